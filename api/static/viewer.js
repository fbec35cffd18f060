// The source viewer: a source's whole parent text with the cited (or matched) passage
// highlighted and scrolled to.
import { api } from "./api.js";
import { $, el, pagesText } from "./dom.js";

/** @typedef {import("./state.js").View} View */

/** The element id of source `n` in `view`'s list. @param {View} view @param {number} n */
export const sourceId = (view, n) => `${view.prefix}-${n}`;

export function closeViewer() {
  $("viewer").hidden = true;
  $("view-results").classList.remove("with-viewer");
  document.querySelectorAll(".src.active").forEach((n) => n.classList.remove("active"));
}

/**
 * Open source `n` of `view`: its citation's quote is the primary highlight, the matched
 * passages the others; ranges outside the text or overlapping an earlier one are left out.
 * @param {View} view
 * @param {number} n
 * @param {boolean} fromCitation
 */
export async function openSource(view, n, fromCitation) {
  const s = view.sources.find((x) => x.n === n);
  if (!s) return;
  if (s.parent_text == null && (s.truncated || s.text == null)) {
    // Results carry matched passages only; the whole parent is fetched when it is opened.
    const response = await api(`/v1/parents/${encodeURIComponent(s.parent_id)}`);
    if (response.ok) s.parent_text = (await response.json()).text;
  }
  const text = s.parent_text || s.text || "";
  const base = s.start; // document offset of the parent text
  const ranges = [];
  const citation = (view.citations || []).find((c) => c.n === n);
  if (citation && fromCitation !== null) ranges.push([citation.quote_start - base, citation.quote_end - base, "primary"]);
  for (const p of s.passages || []) ranges.push([p.start - base, p.end - base, ranges.length ? "secondary" : "primary"]);
  const turn = view.prefix.startsWith("source-") ? `Q${view.prefix.slice(7)} · ` : "";
  $("v-title").textContent = `[${n}] ${s.title || s.source}`;
  $("v-meta").textContent = [turn + s.source, pagesText(s.pages), citation ? "cited passage highlighted" : "matched passages highlighted"]
    .filter(Boolean).join(" · ");
  const box = $("v-text");
  box.textContent = "";
  const valid = ranges.filter(([a, b]) => a >= 0 && b <= text.length && a < b).sort((x, y) => x[0] - y[0]);
  let cursor = 0, first = null;
  for (const [a, b, kind] of valid) {
    if (a < cursor) continue; // overlapping ranges: keep the earlier one
    box.append(text.slice(cursor, a));
    const mark = el("mark", { class: kind === "primary" ? "" : "secondary" }, text.slice(a, b));
    if (!first || kind === "primary" && first.className) first = mark;
    box.append(mark);
    cursor = b;
  }
  box.append(text.slice(cursor));
  $("viewer").hidden = false;
  $("view-results").classList.add("with-viewer");
  document.querySelectorAll(".src.active").forEach((x) => x.classList.remove("active"));
  const item = $(sourceId(view, n));
  if (item) item.classList.add("active");
  const target = first || box;
  requestAnimationFrame(() => {
    if (window.innerWidth < 1000) $("viewer").scrollIntoView({ block: "start" });
    target.scrollIntoView({ block: "center" });
  });
}
