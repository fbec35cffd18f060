// DOM and text helpers. Every piece of text that comes from a user, a document or the model
// is inserted as text (el's children and "text" become text nodes), never as HTML.

/** @param {string} id @returns {HTMLElement} */
export const $ = (id) => document.getElementById(id);

/**
 * A new element: "class", "text", "on<event>" (a listener) or any attribute in `props`;
 * strings among `children` become text nodes.
 * @param {string} tag
 * @param {Record<string, string | EventListener>} [props]
 * @param {...(Node | string)} children
 * @returns {HTMLElement}
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

/** @param {number | null | undefined} n */
export const fmt = (n) => (n == null ? "?" : Number(n).toLocaleString("en-US"));

/** A file size: bytes under 1 KB, else whole KB. @param {number} bytes */
export const sizeText = (bytes) => (bytes < 1024 ? `${bytes} B` : `${fmt(Math.round(bytes / 1024))} KB`);

/** @param {number | null | undefined} s seconds */
export const secs = (s) => (s == null ? "?" : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`);

/** @param {number[] | undefined} pages */
export function pagesText(pages) {
  if (!pages || !pages.length) return "";
  return pages.length === 1 ? `p. ${pages[0]}` : `pp. ${pages[0]}–${pages[pages.length - 1]}`;
}
