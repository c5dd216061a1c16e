// The Number view: GET /admin/v1/check (the decision and why), the number's recent
// blocked attempts, and blocking or allowing it (POST /admin/v1/lists/{list}/entries).
import { api, get } from "./api.js";
import { byId, el, fill, items, localInputToIso, message, shownEntry, table, when } from "./dom.js";
import { busy } from "./ui.js";

let checked = null; // the last check's reply and the channel asked

export function attemptCause(attempt) {
  if (attempt.matched) {
    const m = attempt.matched;
    return `${m.entry} (${m.list}, ${m.scope})`;
  }
  const rule = attempt.rule;
  if (rule) return [rule.kind, rule.scope && `(${rule.scope})`, rule.detail].filter(Boolean).join(" ");
  return "";
}

export function attemptsTable(caption, rows) {
  return table(caption, ["When", "Number", "Upstream", "Channel", "Direction", "Blocked by",
    "Scopes", "Action"], rows.map((a) => [when(a.at), a.number, a.upstream, a.channel,
    a.direction, attemptCause(a), (a.scopes || []).join(", "), a.action]));
}

function definition(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null
    && v !== "").map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function decidedBy(decided) {
  if (!decided) return "";
  const parts = [decided.rule];
  if (decided.scope) parts.push(`scope ${decided.scope}`);
  if (decided.outcome) parts.push(decided.outcome);
  if (decided.detail) parts.push(decided.detail);
  return parts.join(", ");
}

function renderCheck(result) {
  // "Blacklisted" for a list entry's block; a policy rule's refusal shows "blocked".
  const blocked = result.decision === "blocked";
  const verdict = el("p", { class: "verdict" },
    blocked ? el("strong", { class: "badge badge-blocked", id: "check-label" },
      result.label || result.decision)
      : el("strong", { class: `badge badge-${result.decision === "allowed" ? "allowed" : "other"}`,
        id: "check-label" }, result.decision),
    " ", el("span", { class: "verdict-number" }, result.number));
  const facts = definition([
    ["Decision", result.decision],
    ["Number (E.164)", result.number],
    ["Possible number", result.possible ? "yes" : "no (E.164 by syntax only)"],
    ["Scopes applied", (result.scopes || []).join(", ")],
    ["Channel", result.channel || "any"],
    ["Intent", result.intent],
    ["Judged at", when(result.at)],
    ["Decided by", decidedBy(result.decided_by)],
  ]);
  const matched = result.matched || [];
  const entries = matched.length
    ? table("Winning entry of each matching scope", ["Scope", "List", "Entry", "Channel",
      "Source", "Added by", "Added at", "Note (why)", "Expires"],
    matched.map((m) => [m.scope, m.list, m.entry, m.channel, m.source, m.added_by,
      when(m.added_at), m.note, m.expires_at ? when(m.expires_at) : "never"]),
    { class: "matched" })
    : message("No list entry matches this number.");
  const rules = result.rules || [];
  const rulesPart = rules.length
    ? table("Policy rules evaluated, in precedence order", ["Rule", "Scope", "Outcome",
      "Channel", "Detail", "Retry after (s)"], rules.map((r) => [r.rule, r.scope, r.outcome,
      r.channel, r.detail, r.retry_after_seconds]))
    : message(result.decided_by && result.decided_by.rule === "list" && blocked
      ? "No policy rule was evaluated: a block entry decided."
      : "No policy rule was evaluated.");
  fill(byId("check-result"),
    el("h2", {}, "Decision"), verdict, facts,
    el("h3", {}, "List entries"), entries,
    el("h3", {}, "Policy rules"), rulesPart);
}

async function loadAttempts(numberE164) {
  const target = byId("number-attempts");
  try {
    const page = await get("/attempts", { number: numberE164, limit: 20 });
    fill(target, page.attempts.length
      ? attemptsTable(`Last ${page.attempts.length} blocked attempts to ${numberE164}`, page.attempts)
      : message(`No blocked attempt to ${numberE164} is recorded.`));
  } catch (error) {
    fill(target, message(`Attempts could not be read: ${error.describe ? error.describe() : error}`, "error"));
  }
}

function asked() {
  return {
    number: byId("check-number").value.trim(),
    scopes: items(byId("check-scopes").value),
    channel: byId("check-channel").value,
    region: byId("check-region").value.trim().toUpperCase(),
    intent: byId("check-intent").value,
    at: byId("check-at").value.trim(),
  };
}

async function runCheck(question = asked()) {
  const { number, scopes, channel, region, intent, at } = question;
  const result = await get("/check", { number, scope: scopes.join(","), channel, region,
    intent, at });
  checked = { result, channel, question };
  renderCheck(result);
  byId("number-write-target").textContent = result.number;
  // The entry's scope follows each check: its first named scope, else global.
  byId("nw-scope").value = scopes.find((s) => s !== "global") || "global";
  byId("number-write").hidden = false;
  fill(byId("number-write-result"));
  await loadAttempts(result.number);
}

async function write(list) {
  if (!checked) return;
  const { result, channel, question } = checked;
  const body = {
    entries: [channel ? { entry: result.number, channel } : result.number],
    scope: byId("nw-scope").value.trim() || "global",
  };
  const note = byId("nw-note").value.trim();
  if (note) body.note = note;
  const ttl = byId("nw-ttl").value;
  const until = localInputToIso(byId("nw-until").value);
  if (ttl && until) throw new Error("Choose either an expiry delay or an expiry date, not both.");
  if (ttl) body.ttl_seconds = Number(ttl);
  if (until) body.expires_at = until;
  const reply = await api("POST", `/lists/${list}/entries`, { body });
  const parts = [];
  if (reply.added.length) parts.push(`Added to the ${list} list (${body.scope}): ${reply.added.map(shownEntry).join(", ")}.`);
  if (reply.existing.length) parts.push(`Already in the ${list} list (${body.scope}), left as it was: ${reply.existing.map(shownEntry).join(", ")}.`);
  for (const failed of reply.failed) parts.push(`Failed: ${failed.entry}: ${failed.reason}.`);
  // The check again (the decision may have changed), then what the write did.
  const scope = body.scope;
  await runCheck(question);
  byId("nw-scope").value = scope;
  fill(byId("number-write-result"), message(parts.join(" "), reply.failed.length ? "error" : "ok"));
}

export function setup() {
  byId("check-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.submitter, "Check failed", () => runCheck());
  });
  byId("nw-block").addEventListener("click", (event) =>
    busy(event.currentTarget, "Block failed", () => write("block")));
  byId("nw-allow").addEventListener("click", (event) =>
    busy(event.currentTarget, "Allow failed", () => write("allow")));
}

export function show() {}

export function hide() {}

export function reset() {
  checked = null;
  byId("check-form").reset();
  byId("number-write-form").reset();
  byId("check-result").replaceChildren();
  byId("number-write-result").replaceChildren();
  byId("number-write").hidden = true;
  fill(byId("number-attempts"), message("Check a number to see them."));
}
