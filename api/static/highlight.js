// Highlighting in text that came from a document: ranges at levels (the viewer's matched
// passages and cited span) and a query's terms (search snippets and the viewer of a result).
// Marks are built as DOM nodes around text nodes: the document's text is never parsed as HTML.
import { el } from "./dom.js";

/**
 * A highlight: [start, end) in the text at `level` (higher is stronger).
 * @typedef {{start: number, end: number, level: number}} Range
 */

/**
 * The text's [0, length) cut into segments, each at the strongest level of the ranges that
 * cover it (0: none). Ranges may overlap or nest; those outside the text are clipped, empty
 * ones ignored. Adjacent segments of one level are merged, so the segments tile the text in
 * order and no two neighbours share a level.
 * @param {number} length
 * @param {Range[]} ranges
 * @returns {Range[]}
 */
export function levelSegments(length, ranges) {
  const clipped = ranges
    .map((r) => ({ start: Math.max(0, r.start), end: Math.min(length, r.end), level: r.level }))
    .filter((r) => r.start < r.end && r.level > 0);
  const cuts = [...new Set([0, length, ...clipped.flatMap((r) => [r.start, r.end])])].sort((a, b) => a - b);
  const out = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [start, end] = [cuts[i], cuts[i + 1]];
    const level = Math.max(0, ...clipped.filter((r) => r.start <= start && end <= r.end).map((r) => r.level));
    const last = out[out.length - 1];
    if (last && last.level === level) last.end = end;
    else out.push({ start, end, level });
  }
  return out;
}

/**
 * Append `text` to `box` with each segment above level 0 in a `<mark>` of `classes[level]`,
 * and the matches of `pattern` (from termPattern) marked inside them as appendTerms does.
 * @param {HTMLElement} box
 * @param {string} text
 * @param {Range[]} ranges
 * @param {Record<number, string>} classes
 * @param {RegExp | null} [pattern]
 * @returns {(Range & {mark: HTMLElement})[]} the marked segments, in text order
 */
export function appendLevels(box, text, ranges, classes, pattern = null) {
  const marks = [];
  for (const s of levelSegments(text.length, ranges)) {
    const part = text.slice(s.start, s.end);
    if (!s.level) { appendTerms(box, part, pattern); continue; }
    const mark = el("mark", { class: classes[s.level] || "" });
    appendTerms(mark, part, pattern);
    marks.push({ ...s, mark });
    box.append(mark);
  }
  return marks;
}

/** Words a search matches too often to be worth marking (with every 1-2 letter word). */
const STOP_WORDS = new Set(("the and for are but not you all any can had her was one our out has his how its may new now "
  + "off own say she too use who why with from that this what when where which while will would could should there "
  + "their them they then than these those been being have into onto over under about after before again also each "
  + "just more most much only other some such very your yours does did done here were").split(" "));

/**
 * The words of `query` worth marking: letters and digits, lower-cased, once each, longest
 * first (so a longer term wins where two could match); stop words and 1-2 letter words left out.
 * @param {string} query
 * @returns {string[]}
 */
export function queryTerms(query) {
  const words = (query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter((w) => w.length > 2 && !STOP_WORDS.has(w));
  return [...new Set(words)].sort((a, b) => b.length - a.length);
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * A pattern matching any of `terms` as whole words, case-insensitively (null for none).
 * @param {string[]} terms
 * @returns {RegExp | null}
 */
export function termPattern(terms) {
  if (!terms.length) return null;
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${terms.map(escapeRegExp).join("|")})(?![\\p{L}\\p{N}])`, "giu");
}

/**
 * Append `text` to `box` with every match of `pattern` in a `<mark class="term">`.
 * @param {HTMLElement} box
 * @param {string} text
 * @param {RegExp | null} pattern from termPattern
 */
export function appendTerms(box, text, pattern) {
  if (!pattern) { box.append(text); return; }
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    box.append(text.slice(last, m.index), el("mark", { class: "term" }, m[0]));
    last = m.index + m[0].length;
  }
  box.append(text.slice(last));
}
