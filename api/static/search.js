// Search mode (and Ask's fallback while the LLM is down): the ranked results of a query.
import { api, errorText } from "./api.js";
import { secs } from "./dom.js";
import { filters } from "./filters.js";
import { paintResults, setStatus, showBanner } from "./render.js";
import { emptyView, state } from "./state.js";
import { closeViewer } from "./viewer.js";

export function clearResults() {
  state.results = emptyView("result");
  paintResults(state.results, "Results");
  closeViewer();
}

/** @param {string} q @param {boolean} [fallback] instead of an answer the LLM could not give */
export async function runSearch(q, fallback = false) {
  setStatus(fallback ? "Showing search results (no answer)…" : "Searching…", true);
  const started = performance.now();
  const response = await api("/v1/search", { method: "POST", body: JSON.stringify({ query: q, top_k: 10, filters: filters() }) });
  if (!response.ok) { setStatus(""); showBanner(await errorText(response), "error"); return; }
  const body = await response.json();
  state.results.sources = body.results.map((r, i) => ({ ...r, n: i + 1, cited: false, truncated: false }));
  state.results.query = q;
  paintResults(state.results, fallback ? `Search results for “${q}”` : "Results");
  const n = state.results.sources.length;
  setStatus(n ? `${n} results in ${secs((performance.now() - started) / 1000)}` + (fallback ? " (LLM unavailable: search results only)" : "")
    : "No results. Try other words or clear the filters.");
}
