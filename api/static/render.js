// Painting from state: answers with their citations, source lists, the context gauge, the
// turns of the thread, the status line and the banner. Reads state, never changes it.
import { $, el, fmt, pagesText, secs } from "./dom.js";
import { mode } from "./filters.js";
import { appendTerms, queryTerms, termPattern } from "./highlight.js";
import { state } from "./state.js";
import { openSource, sourceId } from "./viewer.js";

/** @typedef {import("./state.js").View} View */
/** @typedef {import("./state.js").Turn} Turn */

/**
 * Why the recent questions were searched instead of a rewrite of the follow-up, by the
 * API's `search_query_note`; any other value is the LLM's error code (e.g. "llm_timeout").
 * @type {Map<string, string>}
 */
const REWRITE_NOTES = new Map([
  ["rewriting is off", "rewriting is off"],
  ["unusable rewrite", "the model's rewrite was not usable"],
]);
const rewriteNote = (note) => REWRITE_NOTES.get(note) ?? `the model could not rewrite it: ${note || "unknown"}`;

// --- status and banner ---------------------------------------------------------------------------
export function setStatus(text, busy = false) {
  $("status").textContent = text;
  $("status").classList.toggle("busy", busy);
}
export const statusText = () => $("status").textContent;

/** A warning (or an error) above the results; "" hides it. */
export function showBanner(text, kind = "warn") {
  const b = $("banner");
  b.textContent = text;
  b.className = kind === "error" ? "banner error" : "banner";
  b.hidden = !text;
}
export const bannerText = () => $("banner").textContent;

/** The thread and the follow-up box show in Ask mode once there is a turn. */
export function showMode() {
  const ask = mode() === "ask", turns = state.thread.length;
  $("thread").hidden = !ask;
  $("thread-head").hidden = !ask || !turns;
  $("followup").hidden = !ask || !turns;
  $("thread-count").textContent = turns ? `(${turns} question${turns === 1 ? "" : "s"})` : "";
  $("fq").disabled = !!state.controller;
  $("followup").querySelector("button").disabled = !!state.controller;
}

// --- answers and sources -----------------------------------------------------------------------
/** `text` with its [n] as links to the sources of `view` (numbers naming none are dropped). */
function renderAnswer(box, view, text) {
  box.textContent = "";
  const known = new Set(view.sources.map((s) => s.n));
  const re = /\[(\s*\d+(?:\s*[,;]\s*\d+)*\s*)\]/g;
  let last = 0, m;
  while ((m = re.exec(text))) {
    box.append(text.slice(last, m.index));
    for (const part of m[1].split(/[,;]/)) {
      const n = parseInt(part, 10);
      if (!known.has(n)) continue; // numbers naming no source are never shown as sources
      box.append(el("a", { class: "cite", href: `#${sourceId(view, n)}`, "aria-label": `Open source ${n}`,
        onclick: (e) => { e.preventDefault(); openSource(view, n); } }, `${n}`));
    }
    last = m.index + m[0].length;
  }
  box.append(text.slice(last));
  const attributed = (view.citations || []).filter((c) => c.kind === "attributed");
  if (attributed.length) {
    const note = el("span", { class: "attribution" }, "The model cited no source; supported by ");
    for (const c of attributed) {
      note.append(el("a", { class: "cite attributed", href: `#${sourceId(view, c.n)}`,
        title: "matched by text overlap, not cited by the model",
        "aria-label": `Open source ${c.n} (attributed by text overlap)`,
        onclick: (e) => { e.preventDefault(); openSource(view, c.n); } }, `≈${c.n}`));
    }
    box.append("\n", note);
  }
}

/**
 * The list of `view`'s sources; in search results (not `askMode`) the words of the view's
 * query are marked in the snippets.
 * @param {HTMLElement} list
 * @param {View} view
 * @param {boolean} askMode
 */
function renderSources(list, view, askMode) {
  const pattern = askMode ? null : termPattern(queryTerms(view.query || ""));
  list.textContent = "";
  for (const s of view.sources) {
    const cited = askMode && (s.cited || s.attributed);
    const tags = [];
    tags.push(el("span", { class: "tag" }, s.file_type || "file"));
    if (askMode) tags.push(el("span", { class: cited ? "tag cited" : "tag" },
      s.cited ? "cited" : s.attributed ? "supports the answer" : "not cited"));
    if (s.truncated) tags.push(el("span", { class: "tag" }, "excerpt"));
    if (s.hop === 2) {
      const via = s.found_by || "a follow-up search";
      tags.push(el("span", { class: "tag hop", title: `Found by the second retrieval hop, which searched for: ${via}` },
        `hop 2 · via: ${via}`));
    }
    const item = el("li", { class: "src", id: sourceId(view, s.n), tabindex: "0", role: "button",
      "aria-label": `Open source ${s.n}: ${s.title}`,
      onclick: () => openSource(view, s.n),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openSource(view, s.n); } } },
      el("h3", {}, el("span", { class: "n" }, `[${s.n}]`), el("span", {}, s.title || s.source), ...tags),
      el("p", { class: "muted" }, [s.source, pagesText(s.pages), askMode ? "" : `score ${s.score.toFixed(3)}`].filter(Boolean).join(" · ")),
      el("p", { class: "snippet" }));
    appendTerms(item.querySelector(".snippet"), (s.snippet || s.text || "").slice(0, 400), pattern);
    list.append(item);
  }
}

/**
 * The search results (`title` over them; hidden when there are none), the words of their
 * query marked in their snippets.
 * @param {View} view @param {string} title
 */
export function paintResults(view, title) {
  $("sources-title").hidden = !view.sources.length;
  $("sources-title").textContent = title;
  renderSources($("sources"), view, false);
}

// --- the context gauge ---------------------------------------------------------------------------
function gaugeNode() {
  return el("div", { class: "gauge", hidden: "" },
    el("div", { class: "bar", "aria-hidden": "true" },
      el("span", { class: "g-hist" }), el("span", { class: "g-used" }), el("span", { class: "g-head" })),
    el("p", { class: "gauge-text muted" }));
}
// The bar is the model's window: earlier turns (history), then sources + system + question,
// then the headroom kept for the answer; each band is exact token counts from the API.
function renderGauge(node, usage, timings, model) {
  if (!usage) return;
  const w = usage.context_window || 1;
  const hist = usage.history_tokens || 0;
  const pct = (n) => `${Math.min(100, (100 * Math.max(0, n)) / w)}%`;
  node.hidden = false;
  node.querySelector(".g-hist").style.width = pct(hist);
  node.querySelector(".g-used").style.width = pct(usage.prompt_tokens - hist);
  node.querySelector(".g-head").style.width = pct(usage.headroom_tokens);
  const t = timings || {};
  const text = node.querySelector(".gauge-text");
  text.textContent = "";
  const swatch = (cls) => el("span", { class: `sw ${cls}`, "aria-hidden": "true" });
  const parts = [];
  if (hist || usage.history_turns_dropped) {
    const dropped = usage.history_turns_dropped ? `, ${fmt(usage.history_turns_dropped)} oldest dropped to fit` : "";
    parts.push([swatch("g-hist"), `history ${fmt(hist)} tokens (${fmt(usage.history_turns_kept)} earlier turn(s)${dropped})`]);
  }
  parts.push([swatch("g-used"), `context ${fmt(usage.context_tokens)} tokens (prompt ${fmt(usage.prompt_tokens)}) of ${fmt(w)}`]);
  parts.push([swatch("g-head"), `headroom ${fmt(usage.headroom_tokens)} reserved (answer ${fmt(usage.max_tokens)} + margin ${fmt(usage.margin_tokens)})`]);
  parts.push([`model ${model || "?"}`], [`retrieval ${secs(t.retrieval)}`]);
  if (t.packing != null) parts.push([`packing ${secs(t.packing)}`]);
  if (t.client_first_token != null) parts.push([`first token ${secs(t.client_first_token)}`]);
  if (t.client_total != null) parts.push([`total ${secs(t.client_total)}`]);
  if (usage.completion_tokens) parts.push([`${fmt(usage.completion_tokens)} tokens generated`]);
  parts.forEach((p, i) => { if (i) text.append(" · "); text.append(...p); });
}

// --- the turns of the thread ---------------------------------------------------------------------
/** @type {WeakMap<Turn, HTMLElement>} each turn's article */
const nodes = new WeakMap();
const part = (t, sel) => nodes.get(t).querySelector(sel);

/** Clear the painted thread. */
export function clearThread() {
  $("thread").textContent = "";
}

/** Append the article of `t` (already the last turn of the thread); earlier turns fold their
 * sources away, each keeping its own list and citations. @param {Turn} t */
export function mountTurn(t) {
  const i = state.thread.indexOf(t) + 1;
  const node = el("article", { class: "turn", id: `turn-${i}` },
    el("h3", { class: "turn-q" }, el("span", { class: "who", "aria-label": `Question ${i}` }, `Q${i}`),
      el("span", { class: "q-text" }, t.question)),
    el("p", { class: "searched muted", hidden: "" }),
    el("div", { class: "answer", hidden: "" }, el("div", { class: "answer-text", "aria-live": "polite" }),
      el("p", { class: "invalid muted", hidden: "" })),
    el("div", { class: "feedback", role: "group", "aria-label": `Rate answer ${i}`, hidden: "" }),
    gaugeNode(),
    el("details", { class: "turn-sources", hidden: "", open: "" }, el("summary", {}), el("ol", { class: "sources" })));
  for (const other of $("thread").querySelectorAll(".turn-sources")) other.open = false;
  nodes.set(t, node);
  $("thread").append(node);
  showMode();
}
export const scrollToTurn = (t) => nodes.get(t).scrollIntoView({ block: "nearest" });
/** The box under the answer of `t` where feedback.js puts its rating control. @param {Turn} t */
export const feedbackSlot = (t) => part(t, ".feedback");

function paintSearched(t) {
  const p = part(t, ".searched");
  const first = t.search_query_source === "question" ? ""
    : t.search_query_source === "rewritten"
      ? `Searched for “${t.search_query}” (rewritten from the conversation)`
      : `Searched for “${t.search_query}” (the recent questions joined; ${rewriteNote(t.search_query_note)})`;
  const follow = t.follow_up_queries || [];
  const by = t.follow_ups_by === "llm" ? "proposed by the model" : "names the first results hold";
  const second = follow.length
    ? `${first ? "Then" : "Also searched"}: ${follow.map((q) => `“${q}”`).join(", ")} (${by})` : "";
  p.hidden = !t.search_query || !(first || second);
  p.textContent = [first, second].filter(Boolean).join(". ");
}
function paintSources(t) {
  const box = part(t, ".turn-sources");
  box.hidden = !t.sources.length;
  const cited = t.sources.filter((s) => s.cited || s.attributed).length;
  box.querySelector("summary").textContent = `Sources (${t.sources.length}${t.outcome === "answered" ? `, ${cited} cited` : ""}), in the order the model read them`;
  renderSources(box.querySelector("ol"), t, true);
}

/** The sources arrived: what was searched, the sources, the gauge, an empty answer box. */
export function paintRetrieved(t) {
  paintSearched(t);
  paintSources(t);
  renderGauge(part(t, ".gauge"), t.usage, t.timings, t.model);
  part(t, ".answer").hidden = false;
}

/** The answer so far, as plain text (its citations become links when it ends). */
export function paintDelta(t) {
  part(t, ".answer-text").textContent = t.answer;
}

/** The whole turn, from its state. @param {Turn} t */
export function paintTurn(t) {
  paintSearched(t);
  paintSources(t);
  part(t, ".answer").hidden = !(t.answer || t.note);
  renderAnswer(part(t, ".answer-text"), t, t.answer);
  if (t.note) part(t, ".answer-text").append(el("p", { class: "turn-note" }, t.note));
  const dropped = [];
  if (t.invalid_citations && t.invalid_citations.length) {
    dropped.push(`source numbers that do not exist (${t.invalid_citations.join(", ")})`);
  }
  if (t.unsupported_citations && t.unsupported_citations.length) {
    dropped.push(`sources that do not state what it attributed to them (${t.unsupported_citations.join(", ")})`);
  }
  part(t, ".invalid").hidden = !dropped.length;
  part(t, ".invalid").textContent = dropped.length ? `The model cited ${dropped.join(" and ")}; those citations were dropped.` : "";
  renderGauge(part(t, ".gauge"), t.usage, t.timings, t.model);
}
