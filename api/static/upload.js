// The Documents view's upload control: files chosen or dropped go to POST /v1/documents, one
// request per choice (the API saves all of them or none, and queues one ingestion job). Each
// file is a row: its upload progress, what the API did with it (saved, renamed, replaced,
// unchanged) and how its ingestion ended; a refusal shows the API's message.
import { api, errorText, upload } from "./api.js";
import { $, el, sizeText } from "./dom.js";

/** @typedef {{filename: string, path: string, outcome: "new" | "renamed" | "replaced" | "unchanged"}} StoredFile */
/** @typedef {{file: File, node: HTMLElement, bar: HTMLProgressElement, state: HTMLElement, stored?: StoredFile}} Row */

/** Job states that may still change (the others are final). */
const OPEN = new Set(["queued", "running"]);
const POLL_MS = 1000;
const base = (path) => path.split("/").pop();

/** What to redraw once files are stored or ingested (the documents and the jobs). */
let refresh = () => {};

/**
 * Wire the control; `onStored` runs after an upload is saved and after its job ends.
 * @param {() => void} onStored
 */
export function initUpload(onStored) {
  refresh = onStored;
  const input = /** @type {HTMLInputElement} */ ($("up-files"));
  $("up-choose").addEventListener("click", () => input.click());
  input.addEventListener("change", () => { send([...input.files]); input.value = ""; });
  const zone = $("drop-zone");
  const hasFiles = (e) => !!e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", (e) => { if (!zone.contains(/** @type {Node} */ (e.relatedTarget))) zone.classList.remove("over"); });
  zone.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    zone.classList.remove("over");
    send([...e.dataTransfer.files]);
  });
  // A file dropped next to the zone must not replace the page with the file.
  for (const name of ["dragover", "drop"]) window.addEventListener(name, (e) => { if (hasFiles(e)) e.preventDefault(); });
}

/** The accepted types, from GET /v1/file-types' `extensions` (suffix -> file type). */
export function offerUploadTypes(extensions) {
  const suffixes = Object.keys(extensions);
  /** @type {HTMLInputElement} */ ($("up-files")).accept = suffixes.join(",");
  $("up-types").textContent = `Accepted: ${[...new Set(Object.values(extensions))].join(", ")}`;
  $("up-types").title = suffixes.join(" ");
}

/** @param {File} file @returns {Row} */
function fileRow(file) {
  const bar = /** @type {HTMLProgressElement} */ (el("progress", { max: "1", value: "0" }));
  const state = el("span", { class: "up-state" }, "waiting…");
  const node = el("li", { class: "up-file", "data-name": file.name },
    el("span", { class: "up-name" }, file.name), el("span", { class: "up-size muted" }, sizeText(file.size)), bar, state);
  return { file, node, bar, state };
}

/** @param {Row} row @param {string} text @param {"" | "ok" | "err"} [kind] */
function setState(row, text, kind = "") {
  row.state.textContent = text;
  row.state.className = `up-state ${kind}`.trim();
}

/** Upload `files` as one request, then follow their job. @param {File[]} files */
async function send(files) {
  if (!files.length) return;
  const rows = files.map(fileRow);
  const caption = el("p", { class: "up-caption muted" }, `${files.length} file${files.length === 1 ? "" : "s"} · ${new Date().toLocaleTimeString()}`);
  const batch = el("li", { class: "up-batch" }, caption, el("ul", { class: "up-files" }, ...rows.map((r) => r.node)));
  $("up-list").prepend(batch);
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  const total = files.reduce((n, f) => n + f.size, 0) || 1;
  const progress = (sent, size) => {
    // The request's bytes are the files' in order (the multipart framing spread over them).
    let offset = 0;
    const done = (sent / (size || 1)) * total;
    for (const r of rows) {
      r.bar.value = r.file.size ? Math.min(1, Math.max(0, (done - offset) / r.file.size)) : sent >= size ? 1 : 0;
      offset += r.file.size;
      setState(r, r.bar.value >= 1 ? "saving…" : r.bar.value > 0 ? `uploading ${Math.round(r.bar.value * 100)}%` : "waiting…");
    }
  };
  progress(0, 1);
  const replace = /** @type {HTMLInputElement} */ ($("up-replace")).checked;
  const result = await upload(`/v1/documents${replace ? "?replace=true" : ""}`, form, progress);
  for (const r of rows) r.bar.hidden = true;
  if (!result.ok) {
    for (const r of rows) setState(r, "not saved", "err");
    batch.append(el("p", { class: "up-error", role: "alert" }, result.message));
    return;
  }
  /** @type {{files: StoredFile[], job: {job_id: string} | null}} */
  const body = result.body;
  for (const r of rows) {
    r.stored = body.files.find((f) => f.filename === r.file.name);
    setState(r, r.stored ? `${outcomeText(r.stored)}${body.job ? " · ingesting…" : ""}` : "not in the answer", r.stored ? "" : "err");
  }
  if (!body.job) batch.append(el("p", { class: "muted" }, "Saved to the inbox; this API runs no ingestion jobs, so they are read at its next start."));
  refresh();
  if (!body.job) return;
  const label = caption.textContent + ` · job ${body.job.job_id.slice(0, 8)}`;
  caption.textContent = label;
  const status = await follow(body.job.job_id, rows);
  if (status) caption.textContent = `${label} ${status}`;
}

/** @param {StoredFile} f */
function outcomeText(f) {
  if (f.outcome === "renamed") return `saved as ${base(f.path)} (a different file had its name)`;
  if (f.outcome === "replaced") return "saved, replacing the stored file";
  if (f.outcome === "unchanged") return "unchanged (already stored)";
  return "saved";
}

/** Poll the job until it ends, then write each file's ingestion outcome; its final status
 * ("" when the job could not be read). @returns {Promise<string>} */
async function follow(jobId, rows) {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const response = await api(`/v1/ingest/${encodeURIComponent(jobId)}`);
    if (!response.ok) {
      const why = await errorText(response);
      for (const r of rows) if (r.stored) setState(r, `${outcomeText(r.stored)} · ingestion unknown: ${why}`, "err");
      return "";
    }
    const job = await response.json();
    if (OPEN.has(job.status)) continue;
    for (const r of rows) if (r.stored) settle(r, r.stored, job);
    refresh();
    return job.status;
  }
}

/** A stored file's row once its job ended (`job`: JobOut). @param {Row} r @param {StoredFile} f */
function settle(r, f, job) {
  const failure = (job.failures || []).find((x) => x.path === f.path || base(x.path) === base(f.path));
  if (failure) setState(r, `${outcomeText(f)} · not ingested: ${failure.error}`, "err");
  else if (job.status === "done") setState(r, f.outcome === "unchanged" ? outcomeText(f) : `${outcomeText(f)} · ingested`, "ok");
  else if (job.status === "interrupted") setState(r, `${outcomeText(f)} · ingestion interrupted: it resumes when the service restarts`, "err");
  else setState(r, `${outcomeText(f)} · ingestion ${job.status}${job.error ? `: ${job.error}` : ""}`, "err");
}
