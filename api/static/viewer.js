// The source viewer: a source's whole parent text with its matched passages (faint) and the
// cited span (strong) highlighted, and the strongest scrolled to.
import { api } from "./api.js";
import { $, pagesText } from "./dom.js";
import { appendLevels, queryTerms, termPattern } from "./highlight.js";

/** @typedef {import("./state.js").View} View */

/** The element id of source `n` in `view`'s list. @param {View} view @param {number} n */
export const sourceId = (view, n) => `${view.prefix}-${n}`;

export function closeViewer() {
  $("viewer").hidden = true;
  $("view-results").classList.remove("with-viewer");
  document.querySelectorAll(".src.active").forEach((n) => n.classList.remove("active"));
}

/** Highlight levels in the viewer: a matched passage is faint, the cited span strong. */
const PASSAGE = 1, CITED = 2;
const MARKS = { [PASSAGE]: "passage", [CITED]: "cited" };

/**
 * Open source `n` of `view`: its whole parent text with the matched passages as a faint
 * highlight and its citation's quote (in Ask mode) as the strong one inside them, scrolled to
 * (else the best passage). Ranges may overlap or nest: each piece of text shows the strongest
 * level covering it; ranges not inside the text are left out. A search result's view marks
 * its query's terms too.
 * @param {View} view
 * @param {number} n
 */
export async function openSource(view, n) {
  const s = view.sources.find((x) => x.n === n);
  if (!s) return;
  if (s.parent_text == null && (s.truncated || s.text == null)) {
    // Results carry matched passages only; the whole parent is fetched when it is opened.
    const response = await api(`/v1/parents/${encodeURIComponent(s.parent_id)}`);
    if (response.ok) s.parent_text = (await response.json()).text;
  }
  const text = s.parent_text || s.text || "";
  const base = s.start; // document offset of the parent text
  const citation = (view.citations || []).find((c) => c.n === n);
  const passages = [...(s.passages || [])].sort((a, b) => b.score - a.score);
  const ranges = passages.map((p) => ({ start: p.start - base, end: p.end - base, level: PASSAGE }));
  if (citation) ranges.push({ start: citation.quote_start - base, end: citation.quote_end - base, level: CITED });
  const turn = view.prefix.startsWith("source-") ? `Q${view.prefix.slice(7)} · ` : "";
  $("v-title").textContent = `[${n}] ${s.title || s.source}`;
  $("v-meta").textContent = [turn + s.source, pagesText(s.pages), citation ? "cited text highlighted in its passage" : "matched passages highlighted"]
    .filter(Boolean).join(" · ");
  const box = $("v-text");
  box.textContent = "";
  const inside = ranges.filter((r) => r.start >= 0 && r.end <= text.length);
  const marks = appendLevels(box, text, inside, MARKS, view.query ? termPattern(queryTerms(view.query)) : null);
  const best = passages.length ? Math.max(0, passages[0].start - base) : -1;
  const shown = marks.find((m) => m.level === CITED) || marks.find((m) => m.start <= best && best < m.end) || marks[0];
  const target = shown ? shown.mark : box;
  $("viewer").hidden = false;
  $("view-results").classList.add("with-viewer");
  document.querySelectorAll(".src.active").forEach((x) => x.classList.remove("active"));
  const item = $(sourceId(view, n));
  if (item) item.classList.add("active");
  requestAnimationFrame(() => {
    if (window.innerWidth < 1000) $("viewer").scrollIntoView({ block: "start" });
    target.scrollIntoView({ block: "center" });
  });
}
