// The analysts' search page. Plain JS, no build, no CDN. Every piece of text that comes
// from a user, a document or the model is inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const FILE_TYPES = ["pdf", "docx", "pptx", "html", "md", "txt", "eml", "csv", "xlsx", "png", "jpg", "tiff"];
const state = { controller: null, thread: [], results: { prefix: "result", sources: [], citations: [] }, llmOk: true, started: 0 };

// --- small helpers --------------------------------------------------------------------------
function el(tag, props = {}, ...children) {
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
const fmt = (n) => (n == null ? "?" : Number(n).toLocaleString("en-US"));
const secs = (s) => (s == null ? "?" : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`);
function pagesText(pages) {
  if (!pages || !pages.length) return "";
  return pages.length === 1 ? `p. ${pages[0]}` : `pp. ${pages[0]}–${pages[pages.length - 1]}`;
}
function setStatus(text, busy = false) {
  $("status").textContent = text;
  $("status").classList.toggle("busy", busy);
}
function showBanner(text, kind = "warn") {
  const b = $("banner");
  b.textContent = text;
  b.className = kind === "error" ? "banner error" : "banner";
  b.hidden = !text;
}

// --- API access (with an optional key kept in this tab) --------------------------------------
async function api(path, options = {}, retried = false) {
  const headers = { ...(options.headers || {}) };
  const key = sessionStorage.getItem("rag-api-key");
  if (key) headers["Authorization"] = `Bearer ${key}`;
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && !retried) {
    if (await askForKey()) return api(path, options, true);
  }
  return response;
}
function askForKey() {
  return new Promise((resolve) => {
    const dialog = $("key-dialog");
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "ok" && $("key-input").value) {
        sessionStorage.setItem("rag-api-key", $("key-input").value);
        resolve(true);
      } else resolve(false);
    }, { once: true });
    dialog.showModal();
  });
}
async function errorText(response) {
  try {
    const body = await response.json();
    if (body.error) return `${body.error.message} (${response.status} ${body.error.code})`;
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status} ${response.statusText}`;
}

// --- filters and URL state -------------------------------------------------------------------
function filters() {
  const f = {};
  const doc = $("f-doc").value;
  if (doc) f.document_ids = [doc];
  const folder = $("f-folder").value.trim();
  if (folder) f.folders = [folder];
  const types = [...document.querySelectorAll("#f-types input:checked")].map((i) => i.value);
  if (types.length) f.file_types = types;
  const parts = [doc && "document", folder && "folder", types.length && types.join("/")].filter(Boolean);
  $("filter-summary").textContent = parts.length ? `(${parts.join(", ")})` : "";
  return Object.keys(f).length ? f : undefined;
}
const mode = () => document.querySelector("input[name=mode]:checked").value;
function writeUrl(q) {
  const p = new URLSearchParams();
  if (q) p.set("q", q);
  p.set("mode", mode());
  const f = filters() || {};
  if (f.document_ids) p.set("doc", f.document_ids[0]);
  if (f.folders) p.set("folder", f.folders[0]);
  if (f.file_types) p.set("types", f.file_types.join(","));
  history.pushState(null, "", `?${p}`);
}
function readUrl() {
  const p = new URLSearchParams(location.search);
  $("q").value = p.get("q") || "";
  const m = p.get("mode") === "search" ? "search" : "ask";
  document.querySelector(`input[name=mode][value=${m}]`).checked = true;
  $("f-folder").value = p.get("folder") || "";
  const types = (p.get("types") || "").split(",");
  document.querySelectorAll("#f-types input").forEach((i) => { i.checked = types.includes(i.value); });
  state.pendingDoc = p.get("doc") || "";
  $("f-doc").value = state.pendingDoc;
  if (p.get("doc") || p.get("folder") || p.get("types")) $("filters").open = true;
  return $("q").value.trim();
}

// --- rendering -----------------------------------------------------------------------------------
// A "view" is one list of sources with the answer that cites it: a turn of the conversation
// (its own sources and citations) or the search results. Item ids are `${prefix}-${n}`.
const sourceId = (view, n) => `${view.prefix}-${n}`;

function clearResults() {
  $("sources").textContent = "";
  $("sources-title").hidden = true;
  state.results = { prefix: "result", sources: [], citations: [] };
  closeViewer();
}

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
        onclick: (e) => { e.preventDefault(); openSource(view, n, true); } }, `${n}`));
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
        onclick: (e) => { e.preventDefault(); openSource(view, c.n, true); } }, `≈${c.n}`));
    }
    box.append("\n", note);
  }
}

function renderSources(list, view, askMode) {
  list.textContent = "";
  for (const s of view.sources) {
    const cited = askMode && (s.cited || s.attributed);
    const tags = [];
    tags.push(el("span", { class: "tag" }, s.file_type || "file"));
    if (askMode) tags.push(el("span", { class: cited ? "tag cited" : "tag" },
      s.cited ? "cited" : s.attributed ? "supports the answer" : "not cited"));
    if (s.truncated) tags.push(el("span", { class: "tag" }, "excerpt"));
    const item = el("li", { class: "src", id: sourceId(view, s.n), tabindex: "0", role: "button",
      "aria-label": `Open source ${s.n}: ${s.title}`,
      onclick: () => openSource(view, s.n, false),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openSource(view, s.n, false); } } },
      el("h3", {}, el("span", { class: "n" }, `[${s.n}]`), el("span", {}, s.title || s.source), ...tags),
      el("p", { class: "muted" }, [s.source, pagesText(s.pages), askMode ? "" : `score ${s.score.toFixed(3)}`].filter(Boolean).join(" · ")),
      el("p", { class: "snippet" }, (s.snippet || s.text || "").slice(0, 400)));
    list.append(item);
  }
}

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

// --- the source viewer -----------------------------------------------------------------------
function closeViewer() {
  $("viewer").hidden = true;
  $("view-results").classList.remove("with-viewer");
  document.querySelectorAll(".src.active").forEach((n) => n.classList.remove("active"));
}
async function openSource(view, n, fromCitation) {
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

// --- the conversation ------------------------------------------------------------------------
// The API keeps no state: the thread lives in this tab (sessionStorage, so it survives a
// reload) and each follow-up sends the earlier questions and answers as `history`.
const THREAD_KEY = "rag-thread";
function saveThread() {
  const turns = state.thread.map(({ node, ...t }) => ({ ...t, sources: t.sources.map(({ parent_text, ...s }) => s) }));
  try {
    sessionStorage.setItem(THREAD_KEY, JSON.stringify({ version: 1, turns }));
  } catch (_) {
    showBanner("This conversation is too large to keep in the tab; it will not survive a reload.");
  }
}
function loadThread() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(THREAD_KEY) || "null");
    return saved && saved.version === 1 && Array.isArray(saved.turns) ? saved.turns : [];
  } catch (_) { return []; }
}
function historyOf(turns) {
  const messages = [];
  for (const t of turns) {
    if (t.outcome === "failed" || t.outcome === "pending" || !t.answer) continue;
    messages.push({ role: "user", content: t.question }, { role: "assistant", content: t.answer });
  }
  return messages;
}
function newConversation() {
  if (state.controller) state.controller.abort();
  state.thread = [];
  $("thread").textContent = "";
  sessionStorage.removeItem(THREAD_KEY);
  closeViewer();
  showMode();
}
function showMode() {
  const ask = mode() === "ask", turns = state.thread.length;
  $("thread").hidden = !ask;
  $("thread-head").hidden = !ask || !turns;
  $("followup").hidden = !ask || !turns;
  $("thread-count").textContent = turns ? `(${turns} question${turns === 1 ? "" : "s"})` : "";
  $("fq").disabled = !!state.controller;
  $("followup").querySelector("button").disabled = !!state.controller;
}
function addTurn(question) {
  const t = { question, prefix: `source-${state.thread.length + 1}`, answer: "", sources: [], citations: [],
    outcome: "pending", note: "" };
  const i = state.thread.length;
  t.node = el("article", { class: "turn", id: `turn-${i + 1}` },
    el("h3", { class: "turn-q" }, el("span", { class: "who", "aria-label": `Question ${i + 1}` }, `Q${i + 1}`),
      el("span", { class: "q-text" }, question)),
    el("p", { class: "searched muted", hidden: "" }),
    el("div", { class: "answer", hidden: "" }, el("div", { class: "answer-text", "aria-live": "polite" }),
      el("p", { class: "invalid muted", hidden: "" })),
    gaugeNode(),
    el("details", { class: "turn-sources", hidden: "", open: "" }, el("summary", {}), el("ol", { class: "sources" })));
  // Earlier turns fold their sources away; each keeps its own list and citations.
  for (const other of state.thread) other.node.querySelector(".turn-sources").open = false;
  state.thread.push(t);
  $("thread").append(t.node);
  showMode();
  return t;
}
const part = (t, sel) => t.node.querySelector(sel);
function paintSearched(t) {
  const p = part(t, ".searched");
  p.hidden = !t.search_query || t.search_query_source === "question";
  const why = t.search_query_note === "rewriting is off" ? "rewriting is off"
    : t.search_query_note === "unusable rewrite" ? "the model's rewrite was not usable"
    : `the model could not rewrite it: ${t.search_query_note || "unknown"}`;
  p.textContent = t.search_query_source === "rewritten"
    ? `Searched for “${t.search_query}” (rewritten from the conversation)`
    : `Searched for “${t.search_query}” (the recent questions joined; ${why})`;
}
function paintSources(t) {
  const box = part(t, ".turn-sources");
  box.hidden = !t.sources.length;
  const cited = t.sources.filter((s) => s.cited || s.attributed).length;
  box.querySelector("summary").textContent = `Sources (${t.sources.length}${t.outcome === "answered" ? `, ${cited} cited` : ""}), in the order the model read them`;
  renderSources(box.querySelector("ol"), t, true);
}
function paintTurn(t) {
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
function restoreThread(turns) {
  state.thread = [];
  $("thread").textContent = "";
  for (const saved of turns) {
    const t = addTurn(saved.question);
    Object.assign(t, saved, { prefix: t.prefix });
    paintTurn(t);
  }
  showMode();
}

// --- search and ask --------------------------------------------------------------------------
async function runSearch(q, fallback = false) {
  setStatus(fallback ? "Showing search results (no answer)…" : "Searching…", true);
  const started = performance.now();
  const response = await api("/v1/search", { method: "POST", body: JSON.stringify({ query: q, top_k: 10, filters: filters() }) });
  if (!response.ok) { setStatus(""); showBanner(await errorText(response), "error"); return; }
  const body = await response.json();
  state.results.sources = body.results.map((r, i) => ({ ...r, n: i + 1, cited: false, truncated: false }));
  $("sources-title").hidden = !state.results.sources.length;
  $("sources-title").textContent = fallback ? `Search results for “${q}”` : "Results";
  renderSources($("sources"), state.results, false);
  const n = state.results.sources.length;
  setStatus(n ? `${n} results in ${secs((performance.now() - started) / 1000)}` + (fallback ? " (LLM unavailable: search results only)" : "")
    : "No results. Try other words or clear the filters.");
}

async function ask(q) {
  const history = historyOf(state.thread);
  const t = addTurn(q);
  const controller = new AbortController();
  state.controller = controller;
  state.started = performance.now();
  $("stop").hidden = false;
  showMode();
  setStatus(history.length ? "Rewriting the follow-up, retrieving and packing sources…" : "Retrieving and packing sources…", true);
  t.node.scrollIntoView({ block: "nearest" });
  let response;
  try {
    response = await api("/v1/query", { method: "POST", signal: controller.signal,
      body: JSON.stringify({ question: q, history, filters: filters(), stream: true }) });
  } catch (err) {
    endTurn(t, "failed", err.name === "AbortError" ? "Stopped before the answer started." : `Not answered: network error (${err.message}).`);
    finishAsk(err.name === "AbortError" ? "Stopped." : `Network error: ${err.message}`);
    return;
  }
  if (!response.ok) {
    const message = await errorText(response);
    endTurn(t, "failed", `Not answered: ${message}.`);
    finishAsk("");
    if (response.status === 503 || response.status === 502 || response.status === 504) {
      state.llmOk = false;
      showBanner(`The language model is unavailable: ${message}. Showing search results instead.`);
      await runSearch(q, true);
    } else {
      showBanner(message, "error");
    }
    return;
  }
  showBanner(state.llmOk ? "" : $("banner").textContent);
  let firstToken = null;
  const answerBox = part(t, ".answer-text");
  try {
    for await (const [event, data] of sseEvents(response.body)) {
      if (event === "sources") {
        Object.assign(t, { sources: data.sources, usage: data.usage, timings: data.timings, model: data.model,
          search_query: data.search_query, search_query_source: data.search_query_source,
          search_query_note: data.search_query_note });
        paintSearched(t);
        paintSources(t);
        renderGauge(part(t, ".gauge"), t.usage, t.timings, t.model);
        part(t, ".answer").hidden = false;
        setStatus(data.sources.length ? "Generating…" : "No documents matched.", data.sources.length > 0);
      } else if (event === "delta") {
        if (firstToken == null) firstToken = (performance.now() - state.started) / 1000;
        t.answer += data.text;
        answerBox.textContent = t.answer;
      } else if (event === "final") {
        Object.assign(t, { answer: data.answer, citations: data.citations, sources: data.sources, usage: data.usage,
          model: data.model, reason: data.reason, invalid_citations: data.invalid_citations,
          unsupported_citations: data.unsupported_citations, search_query: data.search_query,
          search_query_source: data.search_query_source, search_query_note: data.search_query_note,
          timings: { ...data.timings, client_first_token: firstToken, client_total: (performance.now() - state.started) / 1000 } });
        const modelCited = data.citations.filter((c) => c.kind === "model").length;
        endTurn(t, "answered", "");
        finishAsk(data.reason === "no_matching_documents"
          ? "No documents matched; the model was not asked."
          : modelCited ? `Answered with ${modelCited} cited source(s).`
          : data.citations.length ? "Answered (sources attributed by text overlap)." : "Answered (no source cited).");
      } else if (event === "error") {
        showBanner(`${data.error.message} (${data.error.code})`, "error");
        endTurn(t, t.answer ? "stopped" : "failed", `The answer was interrupted: ${data.error.message}.`);
        finishAsk("The answer was interrupted.");
      }
    }
  } catch (err) {
    if (err.name === "AbortError") {
      endTurn(t, t.answer ? "stopped" : "failed", "Stopped: the partial answer is kept.");
      finishAsk("Stopped. The partial answer is shown; generation was cancelled on the server.");
    } else {
      endTurn(t, t.answer ? "stopped" : "failed", `The stream broke: ${err.message}.`);
      finishAsk(`Stream error: ${err.message}`);
    }
    return;
  }
  if (state.controller === controller) {
    if (t.outcome === "pending") endTurn(t, t.answer ? "stopped" : "failed", "The stream ended without a final answer.");
    finishAsk($("status").textContent.replace(/…$/, ""));
  }
}
function endTurn(t, outcome, note) {
  if (!state.thread.includes(t)) return; // a new conversation replaced it meanwhile
  t.outcome = outcome;
  t.note = note;
  paintTurn(t);
  saveThread();
}
function finishAsk(text) {
  state.controller = null;
  $("stop").hidden = true;
  showMode();
  setStatus(text, false);
  const focus = document.activeElement;
  if (mode() === "ask" && state.thread.length && (focus === document.body || focus === $("q") || focus === $("fq"))) $("fq").focus();
}

async function* sseEvents(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (event === "done") return;
      yield [event, JSON.parse(data)];
    }
  }
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

// --- documents view --------------------------------------------------------------------------
async function loadDocuments() {
  const response = await api("/v1/documents");
  if (!response.ok) { showBanner(await errorText(response), "error"); return []; }
  const body = await response.json();
  const select = $("f-doc");
  const keep = select.value || state.pendingDoc;
  select.textContent = "";
  select.append(el("option", { value: "" }, "All documents"));
  for (const d of body.documents) select.append(el("option", { value: d.document_id }, d.title || d.source));
  select.value = keep || "";
  return body.documents;
}
async function renderJobs() {
  const response = await api("/v1/ingest");
  const section = $("jobs-section");
  if (!response.ok) {
    section.hidden = false;
    $("jobs-note").textContent = `(${await errorText(response)})`;
    return;
  }
  const body = await response.json();
  section.hidden = !body.queue;
  if (!body.queue) return;
  $("jobs-note").textContent = body.jobs.length ? `(latest ${body.jobs.length})` : "(none yet)";
  const tbody = document.querySelector("#jobs-table tbody");
  tbody.textContent = "";
  for (const j of body.jobs) {
    const c = j.counts;
    const failed = el("td", {}, String(c.failed));
    if (j.failures.length) {
      const list = el("ul", { class: "job-failures" });
      for (const f of j.failures) list.append(el("li", {}, `${f.path.split("/").pop()}: ${f.error}`));
      failed.append(el("details", {}, el("summary", {}, "why"), list));
    }
    const when = new Date(j.created_at * 1000).toLocaleString();
    tbody.append(el("tr", { "data-job": j.job_id },
      el("td", { title: `${j.job_id} · ${j.paths.join(", ")}` }, `${j.job_id.slice(0, 8)} · ${when}`),
      el("td", {}, j.status), el("td", {}, String(j.files_total)), el("td", {}, String(c.done)),
      el("td", {}, String(c.unchanged)), el("td", {}, `${c.queued} / ${c.running} / ${c.retrying}`),
      failed));
  }
  const open = body.jobs.filter((j) => j.status !== "done").length;
  if (open < (state.openJobs || 0)) renderDocList();  // a job finished: new documents
  state.openJobs = open;
  if (open && !$("view-docs").hidden) {
    setTimeout(() => { if (!$("view-docs").hidden) renderJobs(); }, 2000);
  }
}
async function renderDocuments() {
  state.openJobs = 0;
  renderJobs();
  await renderDocList();
}
async function renderDocList() {
  const docs = await loadDocuments();
  $("docs-count").textContent = `(${docs.length})`;
  const tbody = document.querySelector("#docs-table tbody");
  tbody.textContent = "";
  if (!docs.length) tbody.append(el("tr", {}, el("td", { colspan: "6" }, "Nothing ingested yet: run python -m ingest PATH.")));
  for (const d of docs) {
    const ocr = Object.values(d.ocr_confidence || {});
    const size = [d.pages ? `${d.pages} pages` : "", `${fmt(Math.round((d.size_bytes || 0) / 1024))} KB`,
      ocr.length ? `OCR ${ocr.length} page(s), confidence ${Math.round(Math.min(...ocr))}–${Math.round(Math.max(...ocr))}` : "",
      (d.warnings || []).length ? `${d.warnings.length} page(s) left out: ${d.warnings.join("; ")}` : ""].filter(Boolean).join(" · ");
    const when = d.ingested_at ? new Date(d.ingested_at * 1000).toLocaleString() : "";
    tbody.append(el("tr", {},
      el("td", {}, d.title || ""), el("td", {}, d.source), el("td", {}, d.file_type),
      el("td", {}, size), el("td", {}, when),
      el("td", {}, el("button", { type: "button", "aria-label": `Delete ${d.title || d.source}`,
        onclick: () => deleteDocument(d) }, "Delete"))));
  }
}
async function deleteDocument(d) {
  if (!confirm(`Delete "${d.title || d.source}"? All its passages are removed from the index.`)) return;
  const response = await api(`/v1/documents/${encodeURIComponent(d.document_id)}`, { method: "DELETE" });
  if (!response.ok) showBanner(await errorText(response), "error");
  await renderDocuments();
}
function showTab(name) {
  $("view-results").hidden = name !== "results";
  $("view-docs").hidden = name !== "docs";
  $("tab-results").setAttribute("aria-pressed", String(name === "results"));
  $("tab-docs").setAttribute("aria-pressed", String(name === "docs"));
  if (name === "docs") renderDocuments();
}

// --- start -----------------------------------------------------------------------------------
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
  for (const t of FILE_TYPES) $("f-types").append(el("label", {}, el("input", { type: "checkbox", value: t }), t));
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
  $("f-clear").addEventListener("click", () => {
    $("f-doc").value = ""; $("f-folder").value = "";
    document.querySelectorAll("#f-types input").forEach((i) => { i.checked = false; });
    filters();
  });
  document.querySelectorAll("#filters input, #filters select").forEach((n) => n.addEventListener("change", filters));
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
  Promise.all([checkReady(), loadDocuments()]).then(() => { filters(); if (q && !resume) run(false); });
}
document.addEventListener("DOMContentLoaded", init);
