// The documents the API holds and reads: the stored documents (the filter's select and the
// Documents view, with delete), the file types ingestion reads (the filter's boxes, the
// upload's accepted types) and the ingest jobs, in-process or on the queue (refreshed while
// some are open and the view is shown).
import { api, errorText } from "./api.js";
import { $, el, sizeText } from "./dom.js";
import { offerDocuments, offerFileTypes } from "./filters.js";
import { showBanner } from "./render.js";
import { offerUploadTypes } from "./upload.js";

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

/** The filter's file-type boxes and the upload's accepted types, from GET /v1/file-types. */
export async function loadFileTypes() {
  const response = await api("/v1/file-types");
  if (!response.ok) { showBanner(await errorText(response), "error"); return; }
  const body = await response.json();
  offerFileTypes(body.file_types);
  offerUploadTypes(body.extensions);
}

/** Job states that may still change: the table is refreshed while one is shown. */
const OPEN = new Set(["queued", "running"]);
/** A count, or a dash where the job does not say. */
const count = (n) => (n == null ? "–" : String(n));

/** The jobs table: in-process jobs and the queue's alike (JobOut); hidden while there are none
 * and jobs do not run on the queue. */
async function renderJobs() {
  const response = await api("/v1/ingest");
  const section = $("jobs-section");
  if (!response.ok) {
    section.hidden = false;
    $("jobs-note").textContent = `(${await errorText(response)})`;
    return;
  }
  const body = await response.json();
  const jobs = body.jobs || [];
  section.hidden = !jobs.length && !body.queue;
  if (section.hidden) return;
  $("jobs-note").textContent = jobs.length ? `(latest ${jobs.length}${body.queue ? ", on the queue" : ""})` : "(none yet)";
  const tbody = document.querySelector("#jobs-table tbody");
  tbody.textContent = "";
  for (const j of jobs) {
    const c = j.counts || {};
    const failures = j.failures || [];
    const failed = el("td", {}, count(c.failed ?? (failures.length || null)));
    if (failures.length) {
      const list = el("ul", { class: "job-failures" });
      for (const f of failures) list.append(el("li", {}, `${f.path.split("/").pop()}: ${f.error}`));
      failed.append(el("details", {}, el("summary", {}, "why"), list));
    }
    const when = j.created_at ? new Date(j.created_at * 1000).toLocaleString() : "";
    const status = el("td", {}, j.status);
    if (j.error) status.title = j.error;
    tbody.append(el("tr", { "data-job": j.job_id },
      el("td", { title: `${j.job_id} · ${(j.paths || []).join(", ")}` }, [j.job_id.slice(0, 8), when].filter(Boolean).join(" · ")),
      status, el("td", {}, count(j.files_total)), el("td", {}, count(c.done)),
      el("td", {}, count(c.unchanged)), el("td", {}, `${count(c.queued)} / ${count(c.running)} / ${count(c.retrying)}`),
      failed));
  }
  const open = jobs.filter((j) => OPEN.has(j.status)).length;
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
  if (!docs.length) tbody.append(el("tr", {}, el("td", { colspan: "6" }, "Nothing ingested yet: upload files above, or run python -m ingest PATH.")));
  for (const d of docs) {
    const ocr = Object.values(d.ocr_confidence || {});
    const size = [d.pages ? `${d.pages} pages` : "", sizeText(d.size_bytes || 0),
      ocr.length ? `OCR ${ocr.length} page(s), confidence ${Math.round(Math.min(...ocr))}–${Math.round(Math.max(...ocr))}` : "",
      (d.warnings || []).length ? `${d.warnings.length} page(s) left out: ${d.warnings.join("; ")}` : ""].filter(Boolean).join(" · ");
    const when = d.ingested_at ? new Date(d.ingested_at * 1000).toLocaleString() : "";
    tbody.append(el("tr", {},
      el("td", {}, d.title || ""), el("td", {}, d.source), el("td", {}, d.file_type),
      el("td", {}, size), el("td", {}, when),
      el("td", {}, el("button", { type: "button", class: "doc-delete", "aria-label": `Delete ${d.title || d.source}`,
        onclick: () => deleteDocument(d) }, "Delete"))));
  }
}

async function deleteDocument(d) {
  if (!confirm(`Delete "${d.title || d.source}"? All its passages are removed from the index.`)) return;
  const response = await api(`/v1/documents/${encodeURIComponent(d.document_id)}`, { method: "DELETE" });
  if (!response.ok) showBanner(await errorText(response), "error");
  await renderDocuments();
}
