// The documents the API holds and reads: the stored documents (the filter's select and the
// Documents view, with delete), the file types ingestion reads (the filter's boxes) and the
// ingest jobs of the queue (refreshed while some are open and the view is shown).
import { api, errorText } from "./api.js";
import { $, el, fmt } from "./dom.js";
import { offerDocuments, offerFileTypes } from "./filters.js";
import { showBanner } from "./render.js";

/** Open jobs at the last look: fewer now means one finished, with new documents. */
let openJobs = 0;

/** The stored documents (also offered in the filter); none when the API refused. */
export async function loadDocuments() {
  const response = await api("/v1/documents");
  if (!response.ok) { showBanner(await errorText(response), "error"); return []; }
  const body = await response.json();
  offerDocuments(body.documents);
  return body.documents;
}

/** The filter's file-type boxes, from GET /v1/file-types. */
export async function loadFileTypes() {
  const response = await api("/v1/file-types");
  if (!response.ok) { showBanner(await errorText(response), "error"); return; }
  offerFileTypes((await response.json()).file_types);
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
  if (open < openJobs) renderDocList(); // a job finished: new documents
  openJobs = open;
  if (open && !$("view-docs").hidden) {
    setTimeout(() => { if (!$("view-docs").hidden) renderJobs(); }, 2000);
  }
}

/** The Documents view: jobs and documents. */
export async function renderDocuments() {
  openJobs = 0;
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
