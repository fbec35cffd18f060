// Who the page runs as (GET /v1/me): "signed in as NAME (role)" in the header, and the
// controls a role may not use hidden (upload for readers, delete for non-admins). Only a
// convenience: the API checks every request itself. A 401 asks for a key, as any request.
import { api } from "./api.js";
import { $ } from "./dom.js";

/** @returns {Promise<{name: string, role: string, can: Record<string, boolean>} | null>} */
export async function loadMe() {
  let response;
  try { response = await api("/v1/me"); } catch (_) { return null; }
  if (!response.ok) return null;
  const me = await response.json();
  $("whoami").textContent = `signed in as ${me.name} (${me.role})`;
  $("whoami").hidden = false;
  $("upload").hidden = !me.can.ingest;
  document.body.classList.toggle("no-manage", !me.can.manage);
  return me;
}
