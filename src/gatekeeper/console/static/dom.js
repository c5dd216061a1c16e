// DOM helpers. Every piece of data goes into the page as a text node (textContent or
// createTextNode), never as markup: nothing here parses HTML.

/** An element: `el("td", {class: "num"}, "text", child)`. Attributes are set with
 * setAttribute (never `style` or `on*`), children are nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "style" || name.startsWith("on")) throw new Error(`refused attribute ${name}`);
    node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`no element #${id}`);
  return node;
}

/** A table in a keyboard-scrollable wrapper: `columns` are header strings, `rows` are
 * arrays of cells (text or nodes). */
export function table(caption, columns, rows, attrs = {}) {
  const head = el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c))));
  const body = el("tbody", {}, rows.map((row) => rowOf(row)));
  const tableNode = el("table", attrs, el("caption", {}, caption), head, body);
  return el("div", { class: "table-wrap", tabindex: "0", role: "region",
    "aria-label": caption }, tableNode);
}

export function rowOf(cells, attrs = {}) {
  return el("tr", attrs, cells.map((cell) => el("td", {}, cell ?? "")));
}

/** An ISO instant as a <time> showing local time. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return el("time", { datetime: iso, title: iso }, localTime(date));
}

export function localTime(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `
    + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** A datetime-local input's value (local time) as an ISO instant, or "" when empty. */
export function localInputToIso(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new Error(`not a date: ${value}`);
  return date.toISOString();
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "unknown";
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

/** An entry as replies show it: "+33*" or {entry, channel}. */
export function shownEntry(item) {
  if (typeof item === "string") return item;
  if (item && typeof item === "object") return `${item.entry} (${item.channel})`;
  return String(item);
}

/** Split a comma- or line-separated field into trimmed, non-empty items. */
export function items(text) {
  return String(text).split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

/** A short status message (`kind`: ok, error, info) as a paragraph. */
export function message(text, kind = "info") {
  return el("p", { class: `msg msg-${kind}` }, text);
}
