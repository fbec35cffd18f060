// What the page knows, with one owner: the conversation thread, the question in flight, the
// search results and whether the LLM is up. No DOM here: render.js paints from this.
// The API keeps no state: the thread lives in this tab (sessionStorage, so it survives a
// reload) and each follow-up sends the earlier questions and answers as `history`.

/** @typedef {import("./api.js").Source} Source */
/** @typedef {import("./api.js").Citation} Citation */
/**
 * A list of sources with the answer that cites it: a turn of the conversation or the search
 * results (with their `query`, whose words are marked). Its items' element ids are
 * `${prefix}-${n}`.
 * @typedef {{prefix: string, sources: Source[], citations: Citation[], query?: string}} View
 */
/**
 * One question and its answer; stored as is (less the sources' fetched `parent_text`).
 * `outcome` is "pending" until the answer ends "answered", "stopped" (a partial answer is
 * kept) or "failed"; `note` says why when it did not end answered. `request_id` is the
 * answer's (X-RAG-Request-Id); `feedback` is set once a rating of it was stored.
 * @typedef {View & {question: string, answer: string, outcome: string, note: string,
 *   usage?: import("./api.js").Usage, timings?: import("./api.js").Timings, model?: string,
 *   reason?: string | null, invalid_citations?: number[], unsupported_citations?: number[],
 *   search_query?: string, search_query_source?: string, search_query_note?: string | null,
 *   follow_up_queries?: string[], follow_ups_by?: string | null,
 *   request_id?: string | null, feedback?: {rating: "up" | "down", id: string}}} Turn
 */

const THREAD_KEY = "rag-thread";

/** @param {string} prefix @returns {View} */
export const emptyView = (prefix) => ({ prefix, sources: [], citations: [] });

export const state = {
  /** @type {Turn[]} */
  thread: [],
  /** @type {AbortController | null} the question in flight (one at a time) */
  controller: null,
  /** @type {View} the search results (Search mode, or Ask's fallback when the LLM is down) */
  results: emptyView("result"),
  /** false once the LLM was found down: Ask then shows search results */
  llmOk: true,
};

/** A new pending turn at the end of the thread. @param {string} question @returns {Turn} */
export function addTurn(question) {
  const t = { question, prefix: `source-${state.thread.length + 1}`, answer: "", sources: [], citations: [],
    outcome: "pending", note: "" };
  state.thread.push(t);
  return t;
}

/** Forget the conversation, here and in the tab's storage. */
export function resetThread() {
  state.thread = [];
  sessionStorage.removeItem(THREAD_KEY);
}

/** Store the thread in this tab; false when it is too large to keep. */
export function saveThread() {
  const turns = state.thread.map((t) => ({ ...t, sources: t.sources.map(({ parent_text, ...s }) => s) }));
  try {
    sessionStorage.setItem(THREAD_KEY, JSON.stringify({ version: 1, turns }));
    return true;
  } catch (_) {
    return false;
  }
}

/** The turns stored in this tab (none when absent or unreadable). @returns {Turn[]} */
export function loadThread() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(THREAD_KEY) || "null");
    return saved && saved.version === 1 && Array.isArray(saved.turns) ? saved.turns : [];
  } catch (_) { return []; }
}

/** The earlier questions and their answers, as the API's `history` (unanswered turns left out). */
export function historyOf(turns = state.thread) {
  const messages = [];
  for (const t of turns) {
    if (t.outcome === "failed" || t.outcome === "pending" || !t.answer) continue;
    messages.push({ role: "user", content: t.question }, { role: "assistant", content: t.answer });
  }
  return messages;
}
