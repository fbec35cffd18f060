// The analysts' search page: the wiring of its modules. Native ES modules, no build, no CDN.
//   api.js     requests with the tab's key, error texts, a streamed answer as typed events
//   sse.js     a text/event-stream body parsed into events
//   state.js   the conversation thread and what else the page knows (one owner)
//   thread.js  a turn's lifecycle: request -> events -> state -> paint
//   feedback.js  rating an answer (thumbs up/down, a comment) -> POST /v1/feedback
//   render.js  painting from state: answers, citations, sources, gauge, status, banner
//   viewer.js  a source opened with its passages and cited span highlighted
//   highlight.js  marks in document text: ranges at levels, a query's terms
//   search.js  search results
//   documents.js  the Documents view, ingest jobs, the documents and file types offered as filters
//   upload.js  the Documents view's upload control (choose or drop files, progress, outcomes)
//   me.js      who the page runs as (GET /v1/me), and the controls its role may use
//   filters.js the filters and mode, and both in the URL
//   dom.js     element and text helpers
// Every piece of text that comes from a user, a document or the model is inserted as text,
// never as HTML.
import { loadDocuments, loadFileTypes, renderDocuments } from "./documents.js";
import { $ } from "./dom.js";
import { clearFilters, filters, mode, readUrl, writeUrl } from "./filters.js";
import { loadMe } from "./me.js";
import { setStatus, showBanner, showMode } from "./render.js";
import { clearResults, runSearch } from "./search.js";
import { loadThread, state } from "./state.js";
import { ask, newConversation, restoreThread } from "./thread.js";
import { initUpload } from "./upload.js";
import { closeViewer } from "./viewer.js";

function showTab(name) {
  $("view-results").hidden = name !== "results";
  $("view-docs").hidden = name !== "docs";
  $("tab-results").setAttribute("aria-pressed", String(name === "results"));
  $("tab-docs").setAttribute("aria-pressed", String(name === "docs"));
  if (name === "docs") renderDocuments();
}

// The box at the top starts a new conversation (or searches); the box under the thread
// follows up on it.
async function run(pushUrl = true) {
  const q = $("q").value.trim();
  if (!q) { $("q").focus(); return; }
  if (state.controller) state.controller.abort();
  if (pushUrl) writeUrl(q);
  showTab("results");
  clearResults();
  if (state.llmOk || mode() === "search") showBanner("");
  if (mode() === "search") { showMode(); await runSearch(q); return; }
  newConversation();
  await ask(q);
}
async function followUp() {
  const q = $("fq").value.trim();
  if (!q || state.controller) return;
  $("fq").value = "";
  clearResults();
  if (state.llmOk) showBanner("");
  await ask(q);
}

async function checkReady() {
  try {
    const r = await fetch("/readyz");
    const body = await r.json();
    state.llmOk = !!(body.checks && body.checks.llm && body.checks.llm.ok);
    if (!state.llmOk) showBanner("The language model is unavailable: Ask will show search results only until it is back.");
  } catch (_) {
    showBanner("The service is not reachable.", "error");
  }
}

function init() {
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  $("followup").addEventListener("submit", (e) => { e.preventDefault(); followUp(); });
  $("new-conv").addEventListener("click", () => {
    newConversation();
    clearResults();
    setStatus("");
    $("q").value = "";
    writeUrl("");
    $("q").focus();
  });
  document.querySelectorAll("input[name=mode]").forEach((n) => n.addEventListener("change", showMode));
  $("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
  $("v-close").addEventListener("click", closeViewer);
  $("tab-results").addEventListener("click", () => showTab("results"));
  $("tab-docs").addEventListener("click", () => showTab("docs"));
  $("f-clear").addEventListener("click", clearFilters);
  initUpload(renderDocuments);
  $("filters").addEventListener("change", () => filters()); // the file-type boxes come later
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (e.key === "/" && !typing) { e.preventDefault(); $("q").focus(); $("q").select(); }
    if (e.key === "Escape" && !$("viewer").hidden) closeViewer();
  });
  window.addEventListener("popstate", () => {
    const q = readUrl();
    if (mode() === "ask" && state.thread.length && state.thread[0].question === q) showMode(); // same conversation
    else if (q) run(false);
  });
  const q = readUrl();
  // A reload keeps the conversation of this tab; a link naming another question starts anew.
  const saved = loadThread();
  if (saved.length) restoreThread(saved);
  const resume = saved.length && mode() === "ask" && (!q || saved[0].question === q);
  showMode();
  if (resume) $("fq").focus(); else $("q").focus();
  // Who we are, the file types and documents need the key: a 401 asks for it once for all.
  Promise.all([checkReady(), loadMe(), loadFileTypes(), loadDocuments()]).then(() => { filters(); if (q && !resume) run(false); });
}

init(); // a module runs once the document is parsed
