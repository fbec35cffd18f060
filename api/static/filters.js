// The filters (document, folder, file types), the mode, and both in the page's URL, so a
// search or a question can be shared as a link.
import { $, el } from "./dom.js";

/** What the URL asked for before the document list / the file types arrived. */
let pendingDoc = "";
/** @type {string[]} */
let pendingTypes = [];
let typesOffered = false;

/** @returns {"ask" | "search"} */
export const mode = () => document.querySelector("input[name=mode]:checked").value;

function checkedTypes() {
  if (!typesOffered) return pendingTypes; // the boxes are not there yet: the URL's choice
  return [...document.querySelectorAll("#f-types input:checked")].map((i) => i.value);
}

/** The API's `filters` (undefined for none); also writes their summary next to "Filters". */
export function filters() {
  const f = {};
  const doc = $("f-doc").value;
  if (doc) f.document_ids = [doc];
  const folder = $("f-folder").value.trim();
  if (folder) f.folders = [folder];
  const types = checkedTypes();
  if (types.length) f.file_types = types;
  const parts = [doc && "document", folder && "folder", types.length && types.join("/")].filter(Boolean);
  $("filter-summary").textContent = parts.length ? `(${parts.join(", ")})` : "";
  return Object.keys(f).length ? f : undefined;
}

export function clearFilters() {
  $("f-doc").value = "";
  $("f-folder").value = "";
  pendingTypes = [];
  document.querySelectorAll("#f-types input").forEach((i) => { i.checked = false; });
  filters();
}

/** The file-type boxes, one per type the API reads (GET /v1/file-types), in its order. */
export function offerFileTypes(types) {
  const box = $("f-types");
  const checked = checkedTypes();
  box.querySelectorAll("label").forEach((n) => n.remove());
  for (const t of types) {
    box.append(el("label", {}, el("input", { type: "checkbox", value: t }), t));
    if (checked.includes(t)) box.lastChild.querySelector("input").checked = true;
  }
  typesOffered = true;
}

/** The document select, keeping the chosen (or the URL's) document. */
export function offerDocuments(documents) {
  const select = $("f-doc");
  const keep = select.value || pendingDoc;
  select.textContent = "";
  select.append(el("option", { value: "" }, "All documents"));
  for (const d of documents) select.append(el("option", { value: d.document_id }, d.title || d.source));
  select.value = keep || "";
}

/** Push the query, mode and filters onto the history. @param {string} q */
export function writeUrl(q) {
  const p = new URLSearchParams();
  if (q) p.set("q", q);
  p.set("mode", mode());
  const f = filters() || {};
  if (f.document_ids) p.set("doc", f.document_ids[0]);
  if (f.folders) p.set("folder", f.folders[0]);
  if (f.file_types) p.set("types", f.file_types.join(","));
  history.pushState(null, "", `?${p}`);
}

/** Set the box, mode and filters from the URL; returns its query. */
export function readUrl() {
  const p = new URLSearchParams(location.search);
  $("q").value = p.get("q") || "";
  const m = p.get("mode") === "search" ? "search" : "ask";
  document.querySelector(`input[name=mode][value=${m}]`).checked = true;
  $("f-folder").value = p.get("folder") || "";
  pendingTypes = (p.get("types") || "").split(",").filter(Boolean);
  document.querySelectorAll("#f-types input").forEach((i) => { i.checked = pendingTypes.includes(i.value); });
  pendingDoc = p.get("doc") || "";
  $("f-doc").value = pendingDoc;
  if (p.get("doc") || p.get("folder") || p.get("types")) $("filters").open = true;
  return $("q").value.trim();
}
