// A turn's lifecycle: the question is sent, its events update the turn in state, and
// render.js paints the turn from state. One question is in flight at a time
// (state.controller); a turn replaced meanwhile (a new conversation) is left alone.
import { queryEvents } from "./api.js";
import { $ } from "./dom.js";
import { paintFeedback } from "./feedback.js";
import { filters, mode } from "./filters.js";
import {
  bannerText, clearThread, mountTurn, paintDelta, paintRetrieved, paintTurn, scrollToTurn, setStatus,
  showBanner, showMode, statusText,
} from "./render.js";
import { runSearch } from "./search.js";
import { addTurn, historyOf, resetThread, saveThread, state } from "./state.js";
import { closeViewer } from "./viewer.js";

/** @typedef {import("./state.js").Turn} Turn */

const SEARCHED = ["search_query", "search_query_source", "search_query_note", "follow_up_queries",
  "follow_ups_by", "follow_ups_note"];
const RETRIEVED = ["sources", "usage", "timings", "model", ...SEARCHED];
const FINAL = ["answer", "citations", "sources", "usage", "model", "reason", "invalid_citations",
  "unsupported_citations", ...SEARCHED];
const pick = (data, fields) => Object.fromEntries(fields.map((f) => [f, data[f]]));

/** The status line once an answer ended. @param {import("./api.js").FinalData} data */
function answeredText(data) {
  const modelCited = data.citations.filter((c) => c.kind === "model").length;
  return data.reason === "no_matching_documents" ? "No documents matched; the model was not asked."
    : modelCited ? `Answered with ${modelCited} cited source(s).`
    : data.citations.length ? "Answered (sources attributed by text overlap)." : "Answered (no source cited).";
}

/** Ask `q` as the next turn of the conversation. @param {string} q */
export async function ask(q) {
  const history = historyOf();
  const t = addTurn(q);
  mountTurn(t);
  const controller = new AbortController();
  state.controller = controller;
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  $("stop").hidden = false;
  showMode();
  setStatus(history.length ? "Rewriting the follow-up, retrieving and packing sources…" : "Retrieving and packing sources…", true);
  scrollToTurn(t);
  const finish = (text) => { if (state.controller === controller) finishAsk(text); };
  const cut = () => (t.answer ? "stopped" : "failed");
  let firstToken = null;
  for await (const e of queryEvents({ question: q, history, filters: filters() }, controller.signal)) {
    if (e.type === "broken") {
      if (!e.started) {
        endTurn(t, "failed", e.aborted ? "Stopped before the answer started." : `Not answered: network error (${e.message}).`);
        finish(e.aborted ? "Stopped." : `Network error: ${e.message}`);
      } else if (e.aborted) {
        endTurn(t, cut(), "Stopped: the partial answer is kept.");
        finish("Stopped. The partial answer is shown; generation was cancelled on the server.");
      } else {
        endTurn(t, cut(), `The stream broke: ${e.message}.`);
        finish(`Stream error: ${e.message}`);
      }
      return;
    } else if (e.type === "refused") {
      endTurn(t, "failed", `Not answered: ${e.message}.`);
      finish("");
      if (e.status === 503 || e.status === 502 || e.status === 504) {
        state.llmOk = false;
        showBanner(`The language model is unavailable: ${e.message}. Showing search results instead.`);
        await runSearch(q, true);
      } else {
        showBanner(e.message, "error");
      }
      return;
    } else if (e.type === "open") {
      t.request_id = e.requestId;
      showBanner(state.llmOk ? "" : bannerText());
    } else if (e.type === "sources") {
      Object.assign(t, pick(e.data, RETRIEVED));
      paintRetrieved(t);
      setStatus(t.sources.length ? "Generating…" : "No documents matched.", t.sources.length > 0);
    } else if (e.type === "delta") {
      if (firstToken == null) firstToken = elapsed();
      t.answer += e.data.text;
      paintDelta(t);
    } else if (e.type === "final") {
      Object.assign(t, pick(e.data, FINAL),
        { timings: { ...e.data.timings, client_first_token: firstToken, client_total: elapsed() } });
      endTurn(t, "answered", "");
      finish(answeredText(e.data));
    } else if (e.type === "error") {
      showBanner(`${e.data.message} (${e.data.code})`, "error");
      endTurn(t, cut(), `The answer was interrupted: ${e.data.message}.`);
      finish("The answer was interrupted.");
    }
  }
  if (state.controller === controller) {
    if (t.outcome === "pending") endTurn(t, cut(), "The stream ended without a final answer.");
    finishAsk(statusText().replace(/…$/, ""));
  }
}

/** @param {Turn} t @param {string} outcome @param {string} note */
function endTurn(t, outcome, note) {
  if (!state.thread.includes(t)) return; // a new conversation replaced it meanwhile
  t.outcome = outcome;
  t.note = note;
  paintTurn(t);
  paintFeedback(t);
  if (!saveThread()) showBanner("This conversation is too large to keep in the tab; it will not survive a reload.");
}

function finishAsk(text) {
  state.controller = null;
  $("stop").hidden = true;
  showMode();
  setStatus(text, false);
  const focus = document.activeElement;
  if (mode() === "ask" && state.thread.length && (focus === document.body || focus === $("q") || focus === $("fq"))) $("fq").focus();
}

/** Stop the question in flight and forget the thread. */
export function newConversation() {
  if (state.controller) state.controller.abort();
  resetThread();
  clearThread();
  closeViewer();
  showMode();
}

/** Paint the turns a reload found in the tab's storage. @param {Turn[]} turns */
export function restoreThread(turns) {
  state.thread = [];
  clearThread();
  for (const saved of turns) {
    const t = addTurn(saved.question);
    Object.assign(t, saved, { prefix: t.prefix });
    mountTurn(t);
    paintTurn(t);
    paintFeedback(t);
  }
  showMode();
}
