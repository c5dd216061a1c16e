// The Lists view: every list with its size and freshness (GET /admin/v1/lists), paged
// browsing with a prefix search, adding and removing entries, importing a file with
// upload progress, and exporting a list as CSV.
import { api, download, get, upload } from "./api.js";
import { age, byId, el, fill, items, message, shownEntry, table, when } from "./dom.js";
import { busy } from "./ui.js";

const PAGE = 50;
// The browsed list: its query and the cursors of the pages before the current one.
const browsing = { list: "block", scope: "global", prefix: "", cursor: "", back: [], next: null };
let loaded = false;

/** What an operator types as a prefix, as stored entries begin: "+336", from
 * "+33 6", "00336" or "336". */
export function normalisedPrefix(text) {
  let digits = String(text).replace(/[\s().\-/*]/g, "");
  if (digits.startsWith("00")) digits = `+${digits.slice(2)}`;
  if (!digits.startsWith("+")) digits = `+${digits}`;
  return digits === "+" ? "" : digits;
}

async function loadLists() {
  const reply = await get("/lists");
  const rows = reply.lists.map((info) => {
    const browse = el("button", { type: "button", class: "secondary small",
      "aria-label": `Browse the ${info.list} list of ${info.scope}` }, "Browse");
    browse.addEventListener("click", () => {
      byId("browse-list").value = info.list;
      byId("browse-scope").value = info.scope;
      byId("browse-prefix").value = "";
      busy(browse, "Browse failed", () => startBrowse());
      byId("browse-title").scrollIntoView();
    });
    return [info.list, info.scope, String(info.size), info.origin ?? "",
      when(info.as_of), when(info.loaded_at), age(info.age_seconds),
      info.max_age_days ?? "", el("span", { class: `state state-${info.state}` }, info.state),
      info.on_stale, browse];
  });
  fill(byId("lists-table"), rows.length
    ? table("Lists this key may read", ["List", "Scope", "Size", "Origin", "As of", "Loaded",
      "Age", "Max age (days)", "State", "On stale", ""], rows, { id: "lists" })
    : message("No list yet: add entries or import a file."));
  return true;
}

function channelItem(entry, channel) {
  return channel && channel !== "both" ? { entry, channel } : entry;
}

async function removeRow(row, button) {
  const body = { entries: [channelItem(row.entry, row.channel)], scope: browsing.scope };
  await busy(button, "Remove failed", async () => {
    const reply = await api("DELETE", `/lists/${browsing.list}/entries`, { body });
    const done = reply.removed.length ? `Removed ${reply.removed.map(shownEntry).join(", ")}`
      : `${row.entry} was not listed any more`;
    await loadPage();
    byId("browse-status").textContent = `${done} from the ${browsing.list} list (${browsing.scope}). `
      + byId("browse-status").textContent;
  });
}

async function loadPage() {
  const { list, scope, prefix, cursor } = browsing;
  const query = { scope, limit: PAGE, cursor };
  if (prefix) query.prefix = prefix;
  const page = await get(`/lists/${list}/entries`, query);
  let entries = page.entries;
  let filtered = false;
  const wanted = normalisedPrefix(prefix);
  if (wanted && entries.some((e) => !e.entry.startsWith(wanted))) {
    // A server that does not know `prefix` returned the whole list: filter this page.
    entries = entries.filter((e) => e.entry.startsWith(wanted));
    filtered = true;
  }
  browsing.next = page.next_cursor;
  const rows = entries.map((row) => {
    const remove = el("button", { type: "button", class: "danger small write-only",
      "aria-label": `Remove ${row.entry} (${row.channel})` }, "Remove");
    remove.addEventListener("click", () => removeRow(row, remove));
    return [row.entry, row.channel, row.source, row.added_by, when(row.added_at), row.note,
      row.expires_at ? when(row.expires_at) : "never", remove];
  });
  const pageNumber = browsing.back.length + 1;
  const title = `${list} list, ${scope}${prefix ? `, prefix ${prefix}` : ""}: page ${pageNumber}`;
  fill(byId("browse-table"), rows.length
    ? table(title, ["Entry", "Channel", "Source", "Added by", "Added at", "Note", "Expires", ""],
      rows, { id: "entries" })
    : message(`No entry on this page (${title}).`));
  let status = `${entries.length} entries on page ${pageNumber}`;
  if (page.next_cursor) status += "; more on the next page";
  if (filtered) {
    status += ". This server does not filter by prefix (it ignored the prefix parameter): "
      + "only this page was filtered here, and other pages may hold more matches.";
  }
  byId("browse-status").textContent = `${status}.`;
  byId("browse-next").hidden = !page.next_cursor;
  byId("browse-first").hidden = pageNumber === 1;
}

async function startBrowse() {
  browsing.list = byId("browse-list").value;
  browsing.scope = byId("browse-scope").value.trim() || "global";
  browsing.prefix = byId("browse-prefix").value.trim().replace(/\s+/g, "");
  browsing.cursor = "";
  browsing.back = [];
  await loadPage();
}

function editBody() {
  const channel = byId("edit-channel").value;
  const entries = items(byId("edit-entries").value).map((e) => channelItem(e, channel));
  if (!entries.length) throw new Error("Type at least one entry.");
  const body = { entries, scope: byId("edit-scope").value.trim() || "global" };
  const note = byId("edit-note").value.trim();
  if (note) body.note = note;
  const ttl = byId("edit-ttl").value;
  if (ttl) body.ttl_seconds = Number(ttl);
  return body;
}

function reportEdit(reply, list, scope, adding) {
  const lines = [];
  const done = adding ? reply.added : reply.removed;
  const other = adding ? reply.existing : reply.missing;
  const verb = adding ? "Added" : "Removed";
  lines.push(el("li", {}, `${verb} (${list}, ${scope}): ${done.length ? done.map(shownEntry).join(", ") : "none"}`));
  if (other.length) {
    lines.push(el("li", {}, `${adding ? "Already listed" : "Not listed"}: ${other.map(shownEntry).join(", ")}`));
  }
  for (const failed of reply.failed) lines.push(el("li", {}, `Failed: ${failed.entry}: ${failed.reason}`));
  fill(byId("edit-result"), el("ul", { class: reply.failed.length ? "msg-error" : "msg-ok" }, lines));
}

async function edit(adding) {
  const list = byId("edit-list").value;
  const body = editBody();
  if (!adding) {
    delete body.note;
    delete body.ttl_seconds;
  }
  const reply = await api(adding ? "POST" : "DELETE", `/lists/${list}/entries`, { body });
  reportEdit(reply, list, body.scope, adding);
  if (loaded) await loadLists();
  if (byId("browse-table").firstChild && browsing.list === list && browsing.scope === body.scope) {
    await loadPage();
  }
}

function setProgress(loadedBytes, total) {
  const percent = total ? Math.min(100, Math.floor((loadedBytes / total) * 100)) : 100;
  byId("import-progress").value = percent;
  byId("import-progress").textContent = `${percent}%`;
  byId("import-percent").textContent = `${percent}%`;
}

function renderImport(report) {
  const facts = [["Mode", report.mode], ["List", report.list], ["Scope", report.scope],
    ["Lines read", report.lines], ["Added", report.added], ["Already listed", report.existing],
    ["Failed", report.failed], ["Size after the swap", report.size], ["Format", report.format],
    ["Removed", report.removed]]
    .filter(([, v]) => v !== undefined && v !== null);
  const parts = [el("h3", {}, "Import report"),
    el("dl", { class: "facts", id: "import-facts" }, facts.map(([t, v]) => [el("dt", {}, t), el("dd", {}, String(v))]))];
  if (report.failures && report.failures.length) {
    parts.push(table(`Failed lines (the first ${report.failures.length})`, ["Line", "Entry", "Reason"],
      report.failures.map((f) => [String(f.line), f.entry, f.reason])));
  }
  fill(byId("import-report"), parts);
}

async function runImport(button) {
  const file = byId("import-file").files[0];
  if (!file) throw new Error("Choose a file to import.");
  const list = byId("import-list").value;
  const scope = byId("import-scope").value.trim() || "global";
  const mode = byId("import-mode-replace").checked ? "replace" : "add";
  setProgress(0, 1);
  fill(byId("import-report"), message(`Uploading ${file.name} (${file.size} bytes)…`));
  button.setAttribute("aria-busy", "true");
  try {
    const report = await upload(`/lists/${list}/import`, { scope, mode }, file, setProgress);
    setProgress(1, 1);
    renderImport(report);
  } catch (error) {
    fill(byId("import-report"));
    throw error;
  }
  if (loaded) await loadLists();
}

export function setup() {
  byId("lists-refresh").addEventListener("click", (event) =>
    busy(event.currentTarget, "Could not read the lists", loadLists));
  byId("browse-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.submitter, "Browse failed", startBrowse);
  });
  byId("browse-next").addEventListener("click", (event) => {
    if (!browsing.next) return;
    browsing.back.push(browsing.cursor);
    browsing.cursor = browsing.next;
    busy(event.currentTarget, "Next page failed", loadPage);
  });
  byId("browse-first").addEventListener("click", (event) => {
    browsing.cursor = "";
    browsing.back = [];
    busy(event.currentTarget, "First page failed", loadPage);
  });
  byId("edit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(byId("edit-add"), "Add failed", () => edit(true));
  });
  byId("edit-remove").addEventListener("click", (event) =>
    busy(event.currentTarget, "Remove failed", () => edit(false)));
  byId("import-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const button = byId("import-start");
    busy(button, "Import failed", () => runImport(button));
  });
  byId("export-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.submitter, "Export failed", async () => {
      const list = byId("export-list").value;
      const scope = byId("export-scope").value.trim() || "global";
      const saved = await download(`/lists/${list}/export`, { scope },
        `${list}-${scope.replace(/[^A-Za-z0-9._-]/g, "_")}.csv`);
      byId("export-status").textContent = `Saved ${saved.name} (${saved.size} bytes).`;
    });
  });
}

export function show() {
  if (loaded) return;
  loaded = true;
  busy(null, "Could not read the lists", loadLists).then((done) => {
    if (done === undefined && !byId("lists-table").firstChild) loaded = false;
  });
}

export function hide() {}

export function reset() {
  loaded = false;
  Object.assign(browsing, { list: "block", scope: "global", prefix: "", cursor: "", back: [], next: null });
  for (const id of ["browse-form", "edit-form", "import-form", "export-form"]) byId(id).reset();
  for (const id of ["lists-table", "browse-table", "edit-result", "import-report"]) {
    byId(id).replaceChildren();
  }
  for (const id of ["browse-status", "export-status"]) byId(id).textContent = "";
  byId("browse-next").hidden = true;
  byId("browse-first").hidden = true;
  setProgress(0, 1);
}
