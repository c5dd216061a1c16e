// The console's entry point: sign-in and sign-out, the signed-in key, and the views
// (#number, #lists, #attempts in the URL's fragment: view names only, never data).
import { ApiError, get, onUnauthorized, session } from "./api.js";
import * as attempts from "./attempts.js";
import { byId } from "./dom.js";
import * as lists from "./lists.js";
import * as number from "./number.js";
import { busy, clearErrors, showError, who } from "./ui.js";

const VIEWS = { number, lists, attempts };
let current = null;

function showSection(name) {
  for (const section of document.querySelectorAll("main > section.view")) {
    section.hidden = section.id !== `view-${name}`;
  }
}

function setRole(info) {
  who.name = info.name;
  who.role = info.role;
  who.scopes = info.scopes;
  document.body.dataset.role = info.role;
  byId("key-name").textContent = info.name || "unknown";
  byId("key-role").textContent = info.role;
  byId("key-scopes").textContent = info.scopes.length ? info.scopes.join(", ") : "unknown";
  const note = byId("role-note");
  if (info.role === "read") {
    note.textContent = "This key is read-only: the controls that change lists are hidden.";
    note.hidden = false;
  } else if (info.role === "unknown") {
    note.textContent = "This server does not say what the key may do (no GET "
      + "/admin/v1/key): every control is shown, and the API refuses what the key may not do.";
    note.hidden = false;
  } else {
    note.hidden = true;
  }
}

/** Who the key is: GET /admin/v1/key, or, on a server without it (404), whether the key
 * is accepted at all (GET /admin/v1/lists answers any valid key). */
async function describeKey() {
  try {
    const info = await get("/key");
    return {
      name: String(info.name ?? ""),
      role: info.role === "read" || info.role === "write" ? info.role : "unknown",
      scopes: Array.isArray(info.scopes) ? info.scopes.map(String) : [],
    };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
  }
  await get("/lists");
  return { name: "", role: "unknown", scopes: [] };
}

async function enter() {
  const info = await describeKey();
  if (!session.key) return; // signed out meanwhile (a 401)
  setRole(info);
  byId("view-signin").hidden = true;
  byId("whoami").hidden = false;
  byId("views-nav").hidden = false;
  route();
}

function route() {
  if (!session.key) return;
  const wanted = window.location.hash.slice(1);
  const name = Object.hasOwn(VIEWS, wanted) ? wanted : "number";
  for (const link of document.querySelectorAll("#views-nav a")) {
    if (link.id === `nav-${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current && current !== VIEWS[name]) current.hide();
  const changed = current !== VIEWS[name];
  current = VIEWS[name];
  showSection(name);
  current.show();
  if (changed && wanted) {
    const title = document.querySelector(`#view-${name} h1`);
    title.tabIndex = -1;
    title.focus();
  }
}

function signOut(reason = "") {
  session.clear();
  if (current) current.hide();
  current = null;
  for (const view of Object.values(VIEWS)) view.reset();
  setRole({ name: "", role: "unknown", scopes: [] });
  byId("role-note").hidden = true;
  delete document.body.dataset.role;
  byId("whoami").hidden = true;
  byId("views-nav").hidden = true;
  showSection("signin");
  byId("view-signin").hidden = false;
  clearErrors();
  if (reason) showError(reason);
  byId("signin-key").focus();
}

function start() {
  for (const view of Object.values(VIEWS)) view.setup();
  onUnauthorized((error) => signOut(`${error.describe()} Sign in again.`));
  byId("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = byId("signin-key");
    const key = input.value.trim();
    input.value = "";
    if (!key) return;
    session.key = key;
    const button = event.submitter || null;
    await busy(button, "Sign-in failed", enter);
    if (!session.key) byId("signin-key").focus();
  });
  byId("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  if (session.key) {
    busy(null, "Could not reach the admin API", enter);
  } else {
    showSection("signin");
  }
}

start();
