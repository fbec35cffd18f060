// The API's requests: the key kept in this tab (asked for once on a 401), error texts, and a
// streamed answer as typed events (request and SSE here; what they mean is thread.js's).
import { $ } from "./dom.js";
import { sseEvents } from "./sse.js";

/**
 * A source as the API sends it (SourceOut; search results carry the same fields but `n`,
 * `cited` and `truncated`, which the page sets). `parent_text` is fetched when it is opened.
 * @typedef {object} Source
 * @property {number} n
 * @property {string} document_id
 * @property {string} parent_id
 * @property {string} source
 * @property {string} title
 * @property {string} file_type
 * @property {number[]} pages
 * @property {string} text
 * @property {string} [snippet]
 * @property {number} start  document offset of `text`
 * @property {boolean} truncated
 * @property {string | null} [parent_text]
 * @property {number} score
 * @property {boolean} cited
 * @property {boolean} [attributed]
 * @property {{start: number, end: number}[]} [passages]
 * @property {number} [hop]  the retrieval hop that found it: 1, or 2 (a follow-up search)
 * @property {string | null} [found_by]  the follow-up query that found it (hop 2)
 */
/**
 * @typedef {object} Citation
 * @property {number} n
 * @property {number} quote_start
 * @property {number} quote_end
 * @property {"model" | "attributed"} kind
 */
/** @typedef {Record<string, number>} Usage  UsageOut: exact token counts */
/** @typedef {Record<string, number | null>} Timings  seconds per stage */
/**
 * The `sources` event: what retrieval found, before the first token.
 * @typedef {object} SourcesData
 * @property {Source[]} sources
 * @property {Usage} usage
 * @property {Timings} timings
 * @property {string} model
 * @property {string} search_query
 * @property {"question" | "rewritten" | "fallback"} search_query_source
 * @property {string | null} search_query_note
 * @property {string[]} follow_up_queries  the second hop's searches
 * @property {"llm" | "deterministic" | null} follow_ups_by  who planned them
 * @property {string | null} follow_ups_note  why the deterministic ones stood in
 */
/**
 * The `final` event (QueryResponse).
 * @typedef {SourcesData & {answer: string, citations: Citation[], reason: string | null,
 *   invalid_citations: number[], unsupported_citations: number[]}} FinalData
 */
/**
 * What a streamed question yields, in this order: `refused` (an HTTP error before any
 * answer) or `open` (with the answer's request id, from `X-RAG-Request-Id`), then
 * `sources`, `delta`s, and `final` or `error`; `broken` (the request or the stream failed,
 * `aborted` when it was stopped; `started`: after `open`) may end it anywhere. Nothing is
 * thrown.
 * @typedef {{type: "refused", status: number, message: string}
 *   | {type: "open", requestId: string | null}
 *   | {type: "sources", data: SourcesData}
 *   | {type: "delta", data: {text: string}}
 *   | {type: "final", data: FinalData}
 *   | {type: "error", data: {code: string, message: string}}
 *   | {type: "broken", aborted: boolean, started: boolean, message: string}} QueryEvent
 */

const KEY = "rag-api-key";
/** @type {Promise<boolean> | null} the key dialog while it is open: one for all requests */
let prompt = null;

/**
 * `fetch` with the key of this tab; a 401 asks for a key (once for concurrent requests) and
 * retries once with it.
 * @param {string} path
 * @param {RequestInit} [options]
 * @returns {Promise<Response>}
 */
export async function api(path, options = {}, retried = false) {
  const headers = { ...(options.headers || {}) };
  const key = sessionStorage.getItem(KEY);
  if (key) headers["Authorization"] = `Bearer ${key}`;
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && !retried) {
    // A request that left before another one was given the key retries without asking.
    if (sessionStorage.getItem(KEY) !== key || (await askForKey())) return api(path, options, true);
  }
  return response;
}

/** @returns {Promise<boolean>} true when a key was given (and stored in this tab) */
function askForKey() {
  prompt ??= new Promise((resolve) => {
    const dialog = $("key-dialog");
    dialog.addEventListener("close", () => {
      prompt = null;
      if (dialog.returnValue === "ok" && $("key-input").value) {
        sessionStorage.setItem(KEY, $("key-input").value);
        resolve(true);
      } else resolve(false);
    }, { once: true });
    dialog.showModal();
  });
  return prompt;
}

/** The API's error message and code, else the HTTP status. @param {Response} response */
export async function errorText(response) {
  return messageOf(response.status, response.statusText, await response.text().catch(() => ""));
}

/** The API's error message and code in `body` (its JSON text), else the HTTP status. */
function messageOf(status, statusText, body) {
  try {
    const error = JSON.parse(body).error;
    if (error) return `${error.message} (${status} ${error.code})`;
  } catch (_) { /* not JSON */ }
  return `HTTP ${status} ${statusText}`;
}

/**
 * What an upload came back with: `ok` and the body (parsed JSON), else the API's message.
 * `status` 0: the request itself failed (no answer).
 * @typedef {{ok: true, status: number, body: any} | {ok: false, status: number, message: string}} UploadResult
 */

/**
 * POST `form` (multipart) to `path` with the key of this tab, calling `onProgress(sent, total)`
 * as its bytes leave (XMLHttpRequest: fetch reports no upload progress). A 401 asks for a key
 * and sends it again once, as `api` does. Nothing is thrown.
 * @param {string} path
 * @param {FormData} form
 * @param {(sent: number, total: number) => void} onProgress
 * @returns {Promise<UploadResult>}
 */
export async function upload(path, form, onProgress, retried = false) {
  const key = sessionStorage.getItem(KEY);
  const result = await new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try { resolve({ ok: true, status: xhr.status, body: JSON.parse(xhr.responseText) }); return; } catch (_) { /* below */ }
      }
      resolve({ ok: false, status: xhr.status, message: messageOf(xhr.status, xhr.statusText, xhr.responseText) });
    });
    const failed = () => resolve({ ok: false, status: 0, message: "The upload failed: the service did not answer (is a file over its size limit?)" });
    xhr.addEventListener("error", failed);
    xhr.addEventListener("abort", failed);
    xhr.send(form);
  });
  if (result.status === 401 && !retried) {
    if (sessionStorage.getItem(KEY) !== key || (await askForKey())) return upload(path, form, onProgress, true);
  }
  return result;
}

/**
 * POST /v1/query with `stream: true`, as events.
 * @param {{question: string, history: {role: string, content: string}[], filters?: object}} body
 * @param {AbortSignal} signal
 * @returns {AsyncGenerator<QueryEvent>}
 */
export async function* queryEvents(body, signal) {
  let response;
  try {
    response = await api("/v1/query", { method: "POST", signal, body: JSON.stringify({ ...body, stream: true }) });
  } catch (err) {
    yield { type: "broken", aborted: err.name === "AbortError", started: false, message: err.message };
    return;
  }
  if (!response.ok) {
    yield { type: "refused", status: response.status, message: await errorText(response) };
    return;
  }
  const requestId = response.headers.get("X-RAG-Request-Id") || response.headers.get("X-Request-Id");
  yield { type: "open", requestId };
  try {
    for await (const { event, data } of sseEvents(response.body)) {
      if (event === "error") yield { type: "error", data: data.error };
      else if (event === "sources" || event === "delta" || event === "final") yield { type: event, data };
    }
  } catch (err) {
    yield { type: "broken", aborted: err.name === "AbortError", started: true, message: err.message };
  }
}

/**
 * POST /v1/feedback (a rating of an answer). Nothing is thrown.
 * @param {object} body  rag.feedback.Feedback: rating, question, answer, comment, request_id, sources
 * @returns {Promise<{ok: true, id: string} | {ok: false, message: string}>}
 */
export async function sendFeedback(body) {
  try {
    const response = await api("/v1/feedback", { method: "POST", body: JSON.stringify(body) });
    if (response.ok) return { ok: true, id: (await response.json()).id };
    return { ok: false, message: await errorText(response) };
  } catch (err) {
    return { ok: false, message: `network error (${err.message})` };
  }
}
