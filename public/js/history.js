// History: newest first, search by patient ID, cursor paging. The search term stays in the page,
// never in the address bar (patient identifiers do not belong in URLs, logs or browser history).
import { get, query } from "./api.js";
import { field, formatDate, formatPercent, h, isolated, replace, resultLabel, userText } from "./dom.js";

const PAGE = 20;
// Kept for the session so "Back" from an analysis returns to the same search and page.
const remembered = { patientId: "", cursors: [""] };

export async function renderHistory(ctx) {
  document.title = "History · Mediscope";
  const search = h("input#history-patient-id", { type: "search", name: "patient_id", maxlength: "64", autocomplete: "off", dir: "auto",
    spellcheck: "false", value: remembered.patientId });
  const form = h("form#history-search.search-row", { role: "search" },
    field("Patient ID", search),
    h("button#history-search-submit.button-primary", { type: "submit", text: "Search" }),
    h("button#history-clear.button-secondary", { type: "button", text: "Show all" }));
  const tbody = h("tbody");
  const table = h("table#history-table.data-table", {},
    h("caption.visually-hidden", { text: "Analyses, newest first" }),
    h("thead", {}, h("tr", {}, ["Date", "Patient ID", "Name", "Modality", "Findings", ""].map((t) =>
      h("th", { scope: "col", text: t })))),
    tbody);
  const empty = h("p#history-empty.empty", { hidden: true });
  const prev = h("button#history-prev.button-secondary", { type: "button", text: "Newer" });
  const next = h("button#history-next.button-secondary", { type: "button", text: "Older" });
  const pageInfo = h("span.page-info", { "aria-live": "polite" });
  const status = h("p.status", { role: "status" });

  const deleted = ctx.data?.deleted ? h("p#history-notice.info", { role: "status", text: "The analysis was deleted." }) : null;
  replace(ctx.main, h("h1", { text: "History" }), deleted, form, status, h("div.table-wrap", {}, table), empty,
    h("div.pager", {}, prev, pageInfo, next));

  async function load() {
    const cursor = remembered.cursors[remembered.cursors.length - 1];
    ctx.main.dataset.ready = "false";
    status.textContent = "Loading…";
    const page = await get("/api/analyses" + query({ limit: PAGE, patient_id: remembered.patientId, cursor }));
    if (!ctx.isCurrent()) return;
    status.textContent = "";
    replace(tbody, page.items.map(row));
    table.hidden = page.items.length === 0;
    empty.hidden = page.items.length > 0;
    empty.textContent = remembered.patientId ? "No analyses for this patient ID." : "No analyses yet.";
    prev.disabled = remembered.cursors.length <= 1;
    next.disabled = !page.nextCursor;
    next.dataset.cursor = page.nextCursor ?? "";
    pageInfo.textContent = `Page ${remembered.cursors.length}`;
    ctx.ready();
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    remembered.patientId = search.value.trim();
    remembered.cursors = [""];
    load().catch(showError);
  });
  form.querySelector("#history-clear").addEventListener("click", () => {
    search.value = "";
    remembered.patientId = "";
    remembered.cursors = [""];
    load().catch(showError);
  });
  next.addEventListener("click", () => { remembered.cursors.push(next.dataset.cursor); load().catch(showError); });
  prev.addEventListener("click", () => { remembered.cursors.pop(); load().catch(showError); });
  function showError(err) {
    if (err.status === 401 || !ctx.isCurrent()) return;
    status.textContent = err.message;
    ctx.ready();
  }
  await load();
}

function row(a) {
  const findings = a.results.map((r) => `${r.title}: ${resultLabel(r, r.prediction)} (${formatPercent(r.confidence)})`);
  const outOfScope = a.inputCheck?.verdict === "out_of_scope";
  return h("tr", { class: outOfScope ? "out-of-scope-row" : null },
    h("td", {}, h("time", { datetime: a.createdAt, text: formatDate(a.createdAt) })),
    h("td", {}, userText(a.patient.patientId)),
    h("td", {}, userText(a.patient.name ?? "")),
    h("td", {}, [a.patient.modality, a.patient.bodyPart].filter(Boolean).flatMap((t, i) => i ? [" · ", userText(t)] : [userText(t)])),
    h("td.findings", {},
      outOfScope ? h("span.scope-badge", { title: "This image does not look like a scan the model was made for: its numbers are not meaningful.",
        text: "Out of scope: numbers not meaningful" }) : null,
      findings.map((f) => h("span.finding-line", { text: f }))),
    h("td.open-cell", {}, h("a.analysis-link", { href: `/analyses/${a.id}`, "data-link": true,
      "aria-label": `Open the analysis of ${formatDate(a.createdAt)} for patient ${isolated(a.patient.patientId)}`, text: "Open" })));
}
