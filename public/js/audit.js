// Administration: the audit log with filters. Entries hold ids and fixed words, never patient details.
import { get, query } from "./api.js";
import { field, formatDate, h, replace } from "./dom.js";

const ACTIONS = ["session.create", "session.delete", "token.create", "token.revoke", "user.create", "user.update",
  "user.password", "analysis.create", "analysis.view", "analysis.list", "analysis.image", "analysis.report", "analysis.delete",
  "report.draft", "report.edit", "report.sign", "report.amend", "dicom.read", "dicom.store", "study.list", "study.view"];
const OUTCOMES = ["success", "denied", "failure", "not_found", "throttled"];
const PAGE = 100;

export async function renderAudit(ctx) {
  document.title = "Audit log · Mediscope";
  const option = (value, text = value) => h("option", { value, text });
  const action = h("select#audit-action", { name: "action" }, option("", "Any action"), ACTIONS.map((a) => option(a)));
  const outcome = h("select#audit-outcome", { name: "outcome" }, option("", "Any outcome"), OUTCOMES.map((o) => option(o)));
  const actor = h("select#audit-actor", { name: "actor" }, option("", "Anyone"));
  const record = h("input#audit-record", { name: "record", maxlength: "64", spellcheck: "false", autocomplete: "off" });
  const since = h("input#audit-since", { type: "date", name: "since" });
  const until = h("input#audit-until", { type: "date", name: "until" });
  const filters = h("form#audit-filters.card.filters", { "aria-labelledby": "audit-filter-heading" },
    h("h2#audit-filter-heading.visually-hidden", { text: "Filters" }),
    h("div.filter-grid", {},
      field("Action", action), field("Outcome", outcome), field("User", actor),
      field("Record ID", record), field("From (UTC date)", since), field("To (UTC date, inclusive)", until)),
    h("div.filter-actions", {},
      h("button#audit-apply.button-primary", { type: "submit", text: "Apply filters" }),
      h("a#audit-export.button-secondary", { href: "/api/audit/export", download: "mediscope-audit.jsonl", text: "Export (JSON lines)" })));
  const tbody = h("tbody");
  const table = h("table#audit-table.data-table", {},
    h("caption.visually-hidden", { text: "Audit entries, newest first" }),
    h("thead", {}, h("tr", {}, ["Time", "User", "Action", "Record", "Outcome", "Address"].map((t) => h("th", { scope: "col", text: t })))),
    tbody);
  const more = h("button#audit-more.button-secondary", { type: "button", text: "Load more", hidden: true });
  const status = h("p.status", { role: "status" });
  replace(ctx.main, h("h1", { text: "Audit log" }), filters, status, h("div.table-wrap", {}, table), more);

  let before = null;
  const params = () => ({
    action: action.value, outcome: outcome.value, actor: actor.value, record: record.value.trim(),
    since: since.value ? `${since.value}T00:00:00Z` : "",
    until: until.value ? new Date(Date.parse(`${until.value}T00:00:00Z`) + 86400000).toISOString().replace(/\.\d+Z$/, "Z") : "",
  });
  const exportLink = () => { filters.querySelector("#audit-export").href = "/api/audit/export" + query(params()); };

  async function load(append) {
    ctx.main.dataset.ready = "false";
    status.textContent = "Loading…";
    const page = await get("/api/audit" + query({ ...params(), order: "newest", limit: PAGE, before: append ? before : "" }));
    if (!ctx.isCurrent()) return;
    const rows = page.entries.map(row);
    if (append) tbody.append(...rows); else replace(tbody, rows);
    before = page.nextBefore ?? null;
    more.hidden = before == null;
    status.textContent = tbody.children.length ? `${tbody.children.length} entries` : "No entries match these filters.";
    ctx.ready();
  }
  const fail = (err) => { if (err.status !== 401 && ctx.isCurrent()) { status.textContent = err.message; ctx.ready(); } };

  filters.addEventListener("submit", (e) => { e.preventDefault(); exportLink(); load(false).catch(fail); });
  more.addEventListener("click", () => load(true).catch(fail));

  try {
    const { users } = await get("/api/users");
    actor.append(...users.map((u) => option(u.id, u.username)));
  } catch (err) { if (err.status === 401) return; }
  await load(false);
}

function row(e) {
  return h("tr", { class: e.outcome === "success" ? "" : `outcome-${e.outcome}` },
    h("td", {}, h("time", { datetime: e.time, text: formatDate(e.time, { seconds: true }) })),
    h("td", { text: e.actorUsername ?? e.actorUserId ?? "—" }),
    h("td", { text: e.action }),
    h("td.mono", { text: e.recordId ?? "" }),
    h("td", { text: e.outcome.replace("_", " ") }),
    h("td.mono", { text: e.address }));
}
