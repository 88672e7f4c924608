// Studies received by DICOM (C-STORE from the PACS, or DICOMweb STOW-RS): the list, latest first, each
// series with its state and summary; and one study with each slice and its analysis. Addresses carry the
// Study Instance UID only (as the API's do), never a patient's name or id.
import { get } from "./api.js";
import { formatDate, formatDicomDate, formatPercent, h, isolated, labelText, replace, userText } from "./dom.js";

// Each study is a card with its series, so ten fill a screen or two.
const PAGE = 10;
const FIRST_PAGE = `/api/studies?limit=${PAGE}`;
// While a series waits for analysis the view asks again: soon at first, then less often while nothing
// changes (each look is an audited GET), never once everything is analysed or the view is left.
const POLL_FIRST_MS = 2000;
const POLL_MAX_MS = 30_000;
const POLL_GROWTH = 1.5;

// The server's DecisionSupport.notice, word for word.
const NOTICE = "Decision support only, not a diagnosis. A qualified clinician must review every result.";
const OUT_OF_SCOPE_HINT = "The input check found these images unlike the scans the model was made for: their numbers are not meaningful.";
const STATE_TEXT = { received: "Received", analysing: "Analysing", done: "Done", failed: "Failed", skipped: "Skipped" };

// Kept for the session so "Back" from a study returns to the same page of the list.
const remembered = { pages: [FIRST_PAGE] };

// ---------------------------------------------------------------- the list
export async function renderStudies(ctx) {
  document.title = "Studies · Mediscope";
  const list = h("ol#studies-list.study-list", { "aria-label": "Received studies, latest first" });
  const empty = h("div#studies-empty.empty", { hidden: true },
    h("p", { text: "No studies received yet." }),
    h("p.hint", { text: "Studies arrive from the PACS or a scanner by DICOM C-STORE (the listener, dicom.listen) or by " +
      "DICOMweb STOW-RS (POST /dicom-web/studies with a clinician's API token). Your IT sets this up: see " +
      "“Receiving DICOM from the PACS” (docs/receiving-dicom.md)." }));
  const status = h("p#studies-status.status", { role: "status" });
  const refresh = h("button#studies-refresh.button-secondary", { type: "button", text: "Refresh" });
  const prev = h("button#studies-prev.button-secondary", { type: "button", text: "Newer" });
  const next = h("button#studies-next.button-secondary", { type: "button", text: "Older" });
  const pageInfo = h("span.page-info", { "aria-live": "polite" });
  const pager = h("div.pager#studies-pager", { hidden: true }, prev, pageInfo, next);
  const view = h("section#studies.studies", { "aria-labelledby": "studies-heading" },
    h("div.page-head", {},
      h("div", {},
        h("h1#studies-heading", { text: "Studies" }),
        h("p.subtle", { text: "Received from the PACS or a scanner; every slice is analysed like an upload." })),
      h("div.actions", {}, refresh)),
    h("p#studies-notice.notice.notice-strong", { role: "note" }, h("strong", { text: NOTICE })),
    status, list, empty, pager);
  replace(ctx.main, view);

  let nextPage = null;
  let shown = null;   // the last answer, to tell a refresh that changed something from one that did not
  async function load(stale) {
    const page = await get(remembered.pages[remembered.pages.length - 1]);
    if (stale()) return null;
    status.textContent = "";
    const text = JSON.stringify(page);
    const moved = text !== shown;
    shown = text;
    if (moved) {
      keepFocus(list, () => replace(list, page.studies.map((s) => h("li", {}, studyCard(s)))));
      list.hidden = page.studies.length === 0;
      empty.hidden = page.studies.length > 0 || remembered.pages.length > 1;
      // Only the server's own next page is followed.
      nextPage = typeof page.next === "string" && page.next.startsWith("/api/studies?") ? page.next : null;
      next.disabled = !nextPage;
      prev.disabled = remembered.pages.length <= 1;
      pager.hidden = next.disabled && prev.disabled;
      pageInfo.textContent = `Page ${remembered.pages.length}`;
    }
    ctx.ready();
    return { waiting: page.studies.some(waiting), moved };
  }

  const poll = poller(ctx, view, load, status);
  const go = (change) => { change(); shown = null; poll.now(); };
  refresh.addEventListener("click", () => poll.now());
  next.addEventListener("click", () => { if (nextPage) go(() => remembered.pages.push(nextPage)); });
  prev.addEventListener("click", () => go(() => remembered.pages.pop()));
  await poll.first();
}

function studyCard(s) {
  const headingId = `study-${s.studyInstanceUID}`;
  const when = h("time", { datetime: s.lastReceivedAt, text: formatDate(s.lastReceivedAt) });
  return h("article.card.study", { dataset: { studyUid: s.studyInstanceUID }, "aria-labelledby": headingId },
    h("div.study-head", {},
      h("h2", { id: headingId }, patientLine(s)),
      h("a.button-secondary.study-link", { id: `open-${s.studyInstanceUID}`, href: studyPath(s), "data-link": true,
        "aria-label": `Open the study${s.patientId ? ` of patient ${isolated(s.patientId)}` : ""} received ${formatDate(s.lastReceivedAt)}`,
        text: "Open study" })),
    h("p.study-meta", {}, joined([
      s.studyDate ? ["Study date ", dicomDate(s.studyDate)] : null,
      s.studyDescription ? h("span.study-description", {}, userText(s.studyDescription)) : null,
      s.modalities.length ? h("span.study-modalities", {}, userText(s.modalities.join(", "))) : null,
      `${s.instances} ${s.instances === 1 ? "instance" : "instances"}`,
      ["Received ", when],
    ])),
    h("ul.series-list", { "aria-label": "Series" }, s.series.map((series) => h("li", {}, seriesBlock(series, "h3", null, s)))));
}

// ---------------------------------------------------------------- one study
export async function renderStudy(ctx, uid) {
  document.title = "Study · Mediscope";
  replace(ctx.main, h("h1", { text: "Study" }), h("p.loading", { text: "Loading…" }));
  let study;
  try {
    study = await get(`/api/studies/${uid}`);
  } catch (err) {
    if (err.status !== 404) throw err;
    if (!ctx.isCurrent()) return;
    ctx.main.dataset.screen = "notfound";
    replace(ctx.main, h("h1", { text: "Study not found" }),
      h("p.message", { text: "No study with this address was received for your organisation." }),
      h("p", {}, h("a", { href: "/studies", "data-link": true, text: "Back to the studies" })));
    ctx.ready();
    return;
  }
  if (!ctx.isCurrent()) return;

  const facts = h("dl.facts#study-facts");
  const seriesList = h("div#study-series.study-series");
  const status = h("p#study-status.status", { role: "status" });
  const subtitle = h("p.subtle#study-patient");
  // A study still arriving (a series sent later) shows after Refresh once the view stopped asking.
  const refresh = h("button#study-refresh.button-secondary", { type: "button", text: "Refresh" });
  const view = h("section#study.study", { dataset: { studyUid: uid }, "aria-labelledby": "study-heading" },
    h("div.page-head", {},
      h("div", {}, h("h1#study-heading", { text: "Study" }), subtitle),
      h("div.actions", {}, refresh, h("a#study-back.button-secondary", { href: "/studies", "data-link": true, text: "All studies" }))),
    h("p#study-notice.notice.notice-strong", { role: "note" }, h("strong", { text: NOTICE })),
    h("div.card#study-facts-card", { role: "group", "aria-labelledby": "study-facts-heading" },
      h("h2#study-facts-heading", { text: "Patient and study" }), facts),
    status, seriesList);
  replace(ctx.main, view);

  let shown = null;
  function render(s) {
    replace(subtitle, patientLine(s));
    const rows = [
      ["Patient ID", s.patientId && userText(s.patientId)], ["Name", s.patientName && userText(s.patientName)],
      ["Study date", s.studyDate && dicomDate(s.studyDate)], ["Description", s.studyDescription && userText(s.studyDescription)],
      ["Modalities", s.modalities.length && userText(s.modalities.join(", "))], ["Instances", String(s.instances)],
      ["Received", receivedRange(s)], ["Study Instance UID", h("span.mono", { text: s.studyInstanceUID })],
    ].filter(([, value]) => value);
    replace(facts, rows.map(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)]));
    keepFocus(seriesList, () => replace(seriesList, s.series.map((series) =>
      h("section.card.series-detail", { "aria-labelledby": `series-${series.seriesInstanceUID}` },
        seriesBlock(series, "h2", `series-${series.seriesInstanceUID}`), slicesTable(series)))));
  }
  async function load(stale) {
    const s = study ?? await get(`/api/studies/${uid}`);
    study = null;
    if (stale()) return null;
    status.textContent = "";
    const text = JSON.stringify(s);
    const moved = text !== shown;
    shown = text;
    if (moved) render(s);
    ctx.ready();
    return { waiting: waiting(s), moved };
  }
  const poll = poller(ctx, view, load, status);
  refresh.addEventListener("click", () => poll.now());
  await poll.first();
}

/** The table of a series' slices: state, why one was not analysed, what each analysis found, its link. */
function slicesTable(series) {
  const highest = new Set(series.summary.highest.map((x) => x.sopInstanceUID));
  const name = seriesName(series);
  return h("div.table-wrap", {}, h("table.data-table.slices", {},
    h("caption.visually-hidden", { text: `Slices of ${name}` }),
    h("thead", {}, h("tr", {}, ["Slice", "State", "Findings", "Notes", ""].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, (series.items ?? []).map((item) => {
      const slice = item.instanceNumber != null ? `Slice ${item.instanceNumber}` : "Slice (no number)";
      return h("tr", { class: item.outOfScope ? "out-of-scope-row" : null, dataset: { sopUid: item.sopInstanceUID, state: item.state } },
        h("th", { scope: "row", text: item.instanceNumber ?? "—" }),
        h("td", {}, stateBadge(item.state)),
        h("td.findings", {}, item.findings.map((f) => h("span.finding-line", { dataset: { result: f.result }, text: findingText(f) }))),
        h("td.slice-notes", {},
          item.reason ? h("span.slice-reason", { text: item.reason }) : null,
          item.outOfScope ? h("span.scope-badge", { title: OUT_OF_SCOPE_HINT, text: "Out of scope: numbers not meaningful" }) : null,
          highest.has(item.sopInstanceUID) ? h("span.highest-tag", { text: "Highest probability in the series" }) : null),
        h("td.open-cell", {}, item.analysisId ? h("a.analysis-link", { id: `open-${item.sopInstanceUID}`, href: `/analyses/${item.analysisId}`,
          "data-link": true, "aria-label": `Open the analysis of ${slice.toLowerCase()} of ${name}`, text: "Open analysis" }) : null));
    }))));
}

// ---------------------------------------------------------------- a series: state, progress, summary
/** `study`: in the list, the study the series belongs to (its links then name the patient). */
function seriesBlock(series, heading, headingId, study = null) {
  const c = series.summary.counts;
  const skipped = c.skipped ?? 0, failed = c.failed ?? 0, done = c.done ?? 0;
  const toAnalyse = series.instances - skipped;
  const progressText = [`${done} of ${toAnalyse} analysed`];
  if (failed) progressText.push(`${failed} failed`);
  if (skipped) progressText.push(`${skipped} not analysed (past the series' cap)`);
  const state = series.summary.state;
  return h("div.series", { dataset: { seriesUid: series.seriesInstanceUID, state } },
    h("div.series-head", {},
      h(heading + ".series-name", { id: headingId }, seriesTitle(series)),
      stateBadge(state)),
    h("div.series-progress", {},
      state === "received" || state === "analysing"
        ? h("progress", { max: Math.max(toAnalyse, 1), value: done, "aria-label": `Analysis of ${seriesName(series)}` }) : null,
      h("span.progress-text", { text: progressText.join(" · ") })),
    state === "failed" ? h("p.error.series-failed", { text: series.items
      ? "None of its slices could be analysed; each slice below says why."
      : `None of its slices could be analysed: ${Object.keys(series.summary.reasons ?? {}).join("; ") || "open the study to see why"}.` }) : null,
    summaryBlock(series, study));
}

/** Counts by prediction per model result, the slices flagged out of scope, and the slice with the highest probability. */
function summaryBlock(series, study) {
  const s = series.summary;
  const done = s.counts.done ?? 0;
  if (!done) return null;
  const allOut = s.outOfScope > 0 && s.outOfScope === done;
  return h("div.series-summary", { class: allOut ? "series-summary muted" : null },
    s.outOfScope ? h("p.scope-badge.series-scope", { dataset: { count: s.outOfScope }, title: OUT_OF_SCOPE_HINT,
      text: `${s.outOfScope} of ${done} analysed ${done === 1 ? "slice" : "slices"} out of scope: ${allOut ? "the" : "their"} numbers are not meaningful` }) : null,
    h("ul.result-counts", {}, s.results.map((r) => h("li", { dataset: { result: r.result } },
      h("span.result-title", { text: `${r.title}: ` }),
      joined(Object.entries(r.predictions).sort((a, b) => b[1] - a[1]).map(([label, n]) =>
        h("span.prediction-count", { dataset: { label, count: n }, text: `${r.labelTitles?.[label] ?? labelText(label)} ${n}` })), ", ")))),
    s.highest.map((x) => {
      const slice = x.instanceNumber != null ? `slice ${x.instanceNumber}` : "a slice without a number";
      return h("p.highest", { dataset: { result: x.result, analysisId: x.analysisId } },
        `Highest probability of ${x.labelTitle ?? labelText(x.label)} (${x.title}): ${formatPercent(x.probability)} on ${slice}`
          + `${x.outOfScope ? " (out of scope: not meaningful)" : ""}. `,
        h("a.highest-link", { id: `highest-${series.seriesInstanceUID}-${x.result}`, href: `/analyses/${x.analysisId}`, "data-link": true,
          "aria-label": `Open the analysis of ${slice} of ${seriesName(series)}${study?.patientId ? `, patient ${isolated(study.patientId)}` : ""}`,
          text: "Open its analysis" }));
    }));
}

/** "Series 7 · T1 AX · MR": text from the file isolated in <bdi> (seriesName: the same for an aria-label). */
function seriesTitle(series) {
  return joined([series.seriesNumber != null ? `Series ${series.seriesNumber}` : "Series",
    series.seriesDescription && userText(series.seriesDescription), series.modality && userText(series.modality)]);
}

function seriesName(series) {
  return [series.seriesNumber != null ? `Series ${series.seriesNumber}` : "Series",
    series.seriesDescription && isolated(series.seriesDescription), series.modality && isolated(series.modality)].filter(Boolean).join(" · ");
}

function stateBadge(state) {
  return h("span", { class: `badge state-badge state-${state}`, dataset: { state }, text: STATE_TEXT[state] ?? state });
}

/** "Tumour present: Tumor (87.3 %)", or "... : No tumor (Tumor 3.1 %)": a binary result's positive probability. */
function findingText(f) {
  const predicted = f.predictionTitle ?? labelText(f.prediction);
  if (f.positiveProbability == null || !f.positiveLabel) return `${f.title}: ${predicted}`;
  const of = f.prediction === f.positiveLabel ? "" : `${f.positiveLabelTitle ?? labelText(f.positiveLabel)} `;
  return `${f.title}: ${predicted} (${of}${formatPercent(f.positiveProbability)})`;
}

// ---------------------------------------------------------------- shared
const waitingStates = new Set(["received", "analysing"]);
function waiting(study) { return study.series.some((s) => waitingStates.has(s.summary.state)); }

function studyPath(s) { return `/studies/${s.studyInstanceUID}`; }

function patientLine(s) {
  return joined([
    s.patientId ? ["Patient ", userText(s.patientId)] : "No patient ID",
    s.patientName ? userText(s.patientName) : null,
  ]);
}

function receivedRange(s) {
  const last = h("time", { datetime: s.lastReceivedAt, text: formatDate(s.lastReceivedAt, { seconds: true }) });
  if (s.firstReceivedAt === s.lastReceivedAt) return last;
  return [h("time", { datetime: s.firstReceivedAt, text: formatDate(s.firstReceivedAt, { seconds: true }) }), " to ", last];
}

function dicomDate(value) {
  const iso = /^(\d{4})(\d{2})(\d{2})$/.exec(value);
  return iso ? h("time", { datetime: `${iso[1]}-${iso[2]}-${iso[3]}`, text: formatDicomDate(value) }) : userText(value);
}

/** Parts with " · " between them, skipping empty ones. */
function joined(parts, separator = " · ") {
  return parts.filter((p) => p !== null && p !== undefined && p !== false && p !== "").flatMap((p, i) => (i ? [separator, p] : [p]));
}

/** Re-renders inside `container` without losing the keyboard focus: the focused element (by id) gets it back. */
function keepFocus(container, render) {
  const active = document.activeElement;
  const id = active && container.contains(active) ? active.id : null;
  render();
  if (id) document.getElementById(id)?.focus({ preventScroll: true });
}

/**
 * Loads a view and keeps it fresh: `load(stale)` renders and resolves { waiting, moved }, or null without
 * rendering when `stale()` says a later look (Refresh, another page) or another view took over while it
 * waited for the server, so an older answer never replaces a newer one. While something waits, it runs
 * again after POLL_FIRST_MS when the last look changed something, else after a longer delay (x1.5, at
 * most POLL_MAX_MS). It stops when nothing waits and when the view is left. `root` carries data-polling
 * ("true" while a look is planned) and data-poll-ms for the tests and for anyone curious.
 */
function poller(ctx, root, load, status) {
  let delay = POLL_FIRST_MS;
  let timer = 0;
  let serial = 0;
  let wasWaiting = false;
  const alive = () => ctx.isCurrent() && root.isConnected;
  const plan = (waiting, moved) => {
    clearTimeout(timer);
    if (wasWaiting && !waiting && alive()) ctx.announce("Analysis finished: the page is up to date.");
    wasWaiting = waiting;
    if (!waiting || !alive()) { root.dataset.polling = "false"; return; }
    delay = moved ? POLL_FIRST_MS : Math.min(Math.round(delay * POLL_GROWTH), POLL_MAX_MS);
    root.dataset.polling = "true";
    root.dataset.pollMs = String(delay);
    timer = setTimeout(run, delay);
  };
  // One look at the server; `mine` tells it from a later one.
  const look = async (mine) => {
    const answer = await load(() => mine !== serial || !alive());
    if (answer) plan(answer.waiting, answer.moved);
  };
  async function run() {
    if (!alive()) return;
    const mine = ++serial;
    try {
      await look(mine);
    } catch (err) {
      if (err.status === 401 || !alive() || mine !== serial) return;
      status.textContent = `Could not refresh: ${err.message}`;
      ctx.ready();
      plan(true, false);   // a passing outage: ask again, less often
    }
  }
  return {
    /** The first load: errors go to the router (a page that never loaded shows its error). */
    first: () => look(++serial),
    /** Now (Refresh, another page), then on the usual schedule. */
    now() { clearTimeout(timer); delay = POLL_FIRST_MS; run(); },
  };
}
