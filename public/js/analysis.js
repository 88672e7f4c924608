// One analysis: patient, scan, and per model result the Grad-CAM overlay (opacity, overlay or
// side by side), the probabilities, the prediction and its confidence; below, the report (report.js).
import { get, request } from "./api.js";
import { formatDate, formatPercent, h, isolated, labelText, replace, resultLabel, userText } from "./dom.js";
import { reportCard } from "./report.js";

// The server's InputCheck.warning, word for word.
const OUT_OF_SCOPE_WARNING = "This image does not look like a scan the model was made for: its numbers are not meaningful.";

const STAGES = [["decode", "Decode"], ["preprocess", "Preprocess"], ["forward", "Models"], ["gradCAM", "Grad-CAM"],
  ["encode", "Encode images"], ["modelLoad", "Model load"]];

export async function renderAnalysis(ctx, id) {
  document.title = "Analysis · Mediscope";
  replace(ctx.main, h("h1", { text: "Analysis" }), h("p.loading", { text: "Loading…" }));
  let a = ctx.data?.id === id ? ctx.data : null;
  try {
    a ??= await get(`/api/analyses/${id}`);
  } catch (err) {
    if (err.status !== 404) throw err;
    if (!ctx.isCurrent()) return;
    ctx.main.dataset.screen = "notfound";
    replace(ctx.main, h("h1", { text: "Analysis not found" }),
      h("p.message", { text: "There is no analysis at this address: it was deleted, or it belongs to another organisation." }),
      h("p", {}, h("a", { href: "/analyses", "data-link": true, text: "Back to the history" })));
    ctx.ready();
    return;
  }
  if (!ctx.isCurrent()) return;
  document.title = `Analysis ${formatDate(a.createdAt)} · Mediscope`;

  const p = a.patient;
  const patientRows = [
    ["Patient ID", p.patientId, "patient-id"], ["Name", p.name, "patient-name"], ["Age", p.age != null ? `${p.age} years` : null, "patient-age"],
    ["Sex", p.sex && labelText(p.sex), "patient-sex"], ["Modality", p.modality, "patient-modality"], ["Body part", p.bodyPart, "body-part"],
  ].filter(([, value]) => value != null && value !== "");
  const patientBlock = h("div#patient-block.card", { role: "group", "aria-labelledby": "patient-block-heading" },
    h("h2#patient-block-heading", { text: "Patient" }),
    h("dl.facts", {}, patientRows.map(([term, value, key]) => [h("dt", { text: term }), h("dd", { id: key }, value == null ? null : userText(value))])),
    p.note ? h("div.note", {}, h("h3", { text: "Clinical note" }), h("p#patient-note.note-text", { text: p.note, dir: "auto" })) : null);

  const scanAlt = `${p.modality || "Scan"} image${p.bodyPart ? ` of the ${isolated(p.bodyPart.toLowerCase())}` : ""}, as uploaded`;
  // The file said how it is meant to be viewed (EXIF orientation): analysed and shown that way.
  const turned = a.source?.orientationApplied ? ` · ${a.source.orientationApplied} (EXIF orientation ${a.source.exifOrientation})` : "";
  // A DICOM file: which frame and which window made the analysed image (PS3.3 VOI).
  const d = a.source?.dicom;
  const windowText = d ? ` · DICOM frame ${d.frame} of ${d.numberOfFrames}` +
    (d.voi === "window" && d.windowCenter != null ? `, window ${d.windowCenter}/${d.windowWidth} (centre/width)`
      : d.voi === "lutSequence" ? ", VOI LUT Sequence" : ", full range of the frame") : "";
  const scanFigure = h("figure.card.scan-figure", {},
    h("img#scan-image", { src: a.scan.url, width: a.scan.width, height: a.scan.height, alt: scanAlt, decoding: "async" }),
    h("figcaption#scan-caption", { text: `Scan · ${a.image.width} × ${a.image.height} pixels${turned}${windowText}` }));

  const timings = h("table#timings.timings", {},
    h("caption", { text: "Processing time" }),
    h("tbody", {}, STAGES.filter(([k]) => a.timingsMs?.[k] != null && (k !== "modelLoad" || a.timingsMs[k] > 0))
      .map(([k, label]) => h("tr", {}, h("th", { scope: "row", text: label }), h("td", { text: `${a.timingsMs[k].toFixed(0)} ms` })))));

  const notice = h("p#decision-notice.notice.notice-strong", { role: "note" }, h("strong", { text: a.notice }));
  const check = a.inputCheck ?? { verdict: "not_checked", reasons: [] };
  const outOfScope = check.verdict === "out_of_scope";
  const results = h("div.results", {}, a.results.map((r) => resultCard(a, r, scanAlt)));

  const view = h("section#analysis.analysis", { dataset: { analysisId: a.id }, "aria-labelledby": "analysis-heading" },
    h("div.page-head", {},
      h("div", {},
        h("h1#analysis-heading", { text: "Analysis" }),
        h("p.subtle", {}, h("time", { datetime: a.createdAt, text: formatDate(a.createdAt) }), ` · ID ${a.id}`)),
      h("div.actions", {},
        h("a#report-link.button-secondary", { href: a.links.report, target: "_blank", rel: "noopener", text: "Printable report" }),
        exportMenu(a),
        h("a.button-secondary", { href: "/analyses/new", "data-link": true, text: "New analysis" }),
        deleteControl(ctx, a))),
    outOfScope ? outOfScopeWarning(check) : null,
    notice,
    h("div.analysis-grid", {},
      h("div.analysis-side", {}, patientBlock, scanFigure, inputCheckLine(check), timings),
      // Out of scope: the numbers only behind the warning, folded and muted.
      outOfScope
        ? h("details#out-of-scope-results.results-behind-warning", {},
          h("summary", { text: "Show the model's numbers anyway (not meaningful for this image)" }), results)
        : results),
    reportCard(ctx, a));

  replace(ctx.main, view);
  ctx.ready();
}

/** The analysis for the PACS and the EHR: the DICOM Structured Report, each heatmap as a DICOM Secondary
 *  Capture, and the FHIR DiagnosticReport (each a download the server audits). */
function exportMenu(a) {
  const base = a.links.self;
  const item = (id, href, text, name) => h("li", {}, h("a", { id, href, download: name, text }));
  return h("details#export-menu.export-menu", {},
    h("summary.button-secondary", { text: "Export" }),
    h("ul", {},
      item("export-sr", `${base}/dicom/sr`, "DICOM Structured Report", `analysis-${a.id}-sr.dcm`),
      a.results.map((r) => item(`export-sc-${r.id}`, `${base}/dicom/sc/${encodeURIComponent(r.id)}`,
        `Heatmap as DICOM: ${r.title}`, `analysis-${a.id}-${r.id}.dcm`)),
      item("export-fhir", `${base}/fhir`, "FHIR DiagnosticReport", `analysis-${a.id}.fhir.json`)));
}

/** Leads an out-of-scope analysis: the image is not what the models were made for, and why. */
function outOfScopeWarning(check) {
  return h("section#input-check-warning.out-of-scope", { role: "alert", "aria-labelledby": "input-check-warning-heading" },
    h("h2#input-check-warning-heading", { text: "Not the kind of image the model was made for" }),
    h("p", {}, h("strong", { text: OUT_OF_SCOPE_WARNING })),
    h("ul#input-check-reasons", {}, check.reasons.map((r) => h("li", { dataset: { code: r.code }, text: r.message }))));
}

/** One quiet line beside the scan: what the input check said when it did not object. */
function inputCheckLine(check) {
  const verdicts = { in_scope: "in the models' scope", out_of_scope: "outside the models' scope", not_checked: "not checked" };
  const measured = check.score != null && check.threshold != null
    ? ` (feature distance ${check.score.toFixed(1)}, limit ${check.threshold.toFixed(1)})` : "";
  const why = check.verdict === "not_checked" && check.reasons.length ? `: ${check.reasons.map((r) => r.message).join(" ")}` : "";
  return h("p#input-check-status.hint", { dataset: { verdict: check.verdict }, text: `Input check: ${verdicts[check.verdict] ?? check.verdict}${measured}${why}` });
}

/** "Delete" with a confirmation dialog: removes the record and its images (audited by the server). */
function deleteControl(ctx, a) {
  const error = h("p.error", { role: "alert" });
  const confirm = h("button#delete-confirm.button-danger", { type: "button", text: "Delete permanently" });
  const dialog = h("dialog#delete-dialog", { "aria-labelledby": "delete-dialog-title", "aria-describedby": "delete-dialog-text" },
    h("h2#delete-dialog-title", { text: "Delete this analysis?" }),
    h("p#delete-dialog-text", {}, `The analysis of ${formatDate(a.createdAt)} for patient `, userText(a.patient.patientId),
      ", its scan and heatmaps are removed. This cannot be undone."),
    error,
    h("div.dialog-actions", {}, confirm,
      h("button#delete-cancel.button-secondary", { type: "button", text: "Keep it", onclick: () => dialog.close() })));
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    try {
      await request("DELETE", `/api/analyses/${a.id}`);
      dialog.close();
      ctx.announce("The analysis was deleted.");
      ctx.navigate("/analyses", { data: { deleted: a.id } });
    } catch (err) {
      confirm.disabled = false;
      if (err.status !== 401) error.textContent = err.message;
    }
  });
  const open = h("button#delete-analysis.button-danger-outline", { type: "button", text: "Delete…",
    onclick: () => { error.textContent = ""; dialog.showModal(); dialog.querySelector("#delete-cancel").focus(); } });
  return [open, dialog];
}

function resultCard(a, r, scanAlt) {
  const titleId = `result-${r.id}-title`;
  const overlayAlt = `Grad-CAM heatmap of “${r.title}” over the scan: warm colours mark the regions that drove the prediction ${resultLabel(r, r.explainedLabel)}`;
  const overlay = h("img.heatmap", { src: r.heatmap.url, width: r.heatmap.width, height: r.heatmap.height,
    alt: overlayAlt, loading: "lazy", decoding: "async" });
  const base = h("img.scan-base", { src: a.scan.url, width: a.scan.width, height: a.scan.height, alt: scanAlt, decoding: "async" });
  const stage = h("div.overlay-stage", {}, base, overlay);

  const opacity = h("input.opacity", { type: "range", min: "0", max: "100", value: "60", id: `opacity-${r.id}`,
    "aria-valuetext": "60 %" });
  const opacityLabel = h("label", { for: opacity.id, text: "Heatmap opacity" });
  const opacityValue = h("output", { for: opacity.id, text: "60 %" });
  const setOpacity = () => {
    overlay.style.opacity = String(opacity.value / 100);  // CSSOM, allowed by the CSP (no style attribute)
    opacityValue.textContent = `${opacity.value} %`;
    opacity.setAttribute("aria-valuetext", `${opacity.value} %`);
  };
  opacity.addEventListener("input", setOpacity);
  setOpacity();

  const toggle = h("button.layout-toggle.button-secondary", { type: "button", "aria-pressed": "false", text: "Side by side" });
  const card = h("article.result.card.mode-overlay", { dataset: { resultId: r.id }, "aria-labelledby": titleId });
  toggle.addEventListener("click", () => {
    const sideBySide = toggle.getAttribute("aria-pressed") !== "true";
    toggle.setAttribute("aria-pressed", String(sideBySide));
    card.classList.toggle("mode-side-by-side", sideBySide);
    card.classList.toggle("mode-overlay", !sideBySide);
    // Side by side shows the heatmap at full strength next to the plain scan.
    opacity.disabled = sideBySide;
    overlay.style.opacity = sideBySide ? "1" : String(opacity.value / 100);
  });

  const top = [...r.probabilities].sort((x, y) => y.probability - x.probability);
  return replace(card,
    h("h3", { id: titleId, text: r.title }),
    h("p.finding", {},
      h("span.prediction", { text: resultLabel(r, r.prediction) }),
      h("span.confidence", { text: `${formatPercent(r.confidence)} confidence` })),
    h("p.task", { text: r.task === "binary" ? "Two-class result" : `${r.probabilities.length}-class result` }),
    h("ul.probabilities", { "aria-label": `Probabilities for ${r.title}` }, top.map((pr) => {
      const fill = h("span.prob-fill");
      fill.style.width = `${(pr.probability * 100).toFixed(1)}%`;
      return h("li.prob-row", { class: pr.label === r.prediction ? "prob-row predicted" : "prob-row" },
        h("span.prob-label", { text: resultLabel(r, pr.label) }),
        h("span.prob-bar", { "aria-hidden": "true" }, fill),
        h("span.prob-value", { text: formatPercent(pr.probability) }));
    })),
    stage,
    h("div.view-controls", {}, h("div.opacity-control", {}, opacityLabel, opacity, opacityValue), toggle),
    h("p.hint", { text: `Heatmap explains: ${resultLabel(r, r.explainedLabel)}` }));
}
