// New analysis: pick or drop a scan, see it, fill in the patient, upload with progress.
import { newIdempotencyKey, readDicomFields, uploadAnalysis } from "./api.js";
import { field, formatBytes, h, replace } from "./dom.js";

const MAX_BYTES = 20 * 1024 * 1024;  // nginx's upload limit (BODY_LIMIT)
const TYPES = ["image/jpeg", "image/png"];
const DICOM_ACCEPT = [".dcm", ".dicom", "application/dicom"];

/** A DICOM Part 10 file says "DICM" after its 128-byte preamble; bare data sets go by their name. */
async function isDicom(f) {
  if (f.type === "application/dicom" || /\.(dcm|dicom)$/i.test(f.name)) return true;
  const head = new Uint8Array(await f.slice(128, 132).arrayBuffer());
  return String.fromCharCode(...head) === "DICM";
}

export async function renderNewAnalysis(ctx) {
  document.title = "New analysis · Mediscope";
  let file = null;
  // One key per upload as filled in: sent again with it when "Analyse" is pressed again after a failure
  // (a lost connection may hide a stored analysis), so a retry never makes a second record.
  let uploadKey = null;
  let previewURL = null;

  const fileInput = h("input#scan-file.visually-hidden-file", { type: "file", name: "image", accept: [...TYPES, ...DICOM_ACCEPT].join(","),
    "aria-describedby": "dropzone-hint" });
  const preview = h("img#scan-preview", { alt: "Preview of the selected scan", hidden: true });
  const fileInfo = h("p#scan-file-info.file-info", { "aria-live": "polite" });
  const dropzone = h("div#dropzone.dropzone", {},
    h("label.dropzone-label", { for: "scan-file" },
      h("span.dropzone-title", { text: "Drop a scan here, or choose a file" }),
      h("span#dropzone-hint.hint", { text: "JPEG, PNG or DICOM, up to 20 MB. MRI or CT slice." })),
    fileInput, preview, fileInfo);

  const patientId = h("input#patient-id", { name: "patient_id", required: true, maxlength: "64", autocomplete: "off", spellcheck: "false", dir: "auto" });
  const patientName = h("input#patient-name", { name: "patient_name", maxlength: "200", autocomplete: "off", dir: "auto" });
  const age = h("input#patient-age", { name: "age", type: "number", min: "0", max: "150", step: "1", inputmode: "numeric" });
  const sex = h("select#patient-sex", { name: "sex" },
    [["unknown", "Not stated"], ["female", "Female"], ["male", "Male"], ["other", "Other"]]
      .map(([value, text]) => h("option", { value, text })));
  const modality = h("select#modality", { name: "modality" }, ["MRI", "CT"].map((m) => h("option", { value: m, text: m })));
  const bodyPart = h("input#body-part", { name: "body_part", maxlength: "64", value: "Brain", dir: "auto" });
  const note = h("textarea#note", { name: "note", rows: "3", maxlength: "4000", dir: "auto" });
  const progress = h("progress#upload-progress", { max: "1", value: "0", hidden: true, "aria-label": "Upload progress" });
  const status = h("p#upload-status.status", { "aria-live": "polite" });
  const submit = h("button#analyse-submit.button-primary", { type: "submit", text: "Analyse scan" });
  const frame = h("input#dicom-frame", { name: "frame", type: "number", min: "1", step: "1", inputmode: "numeric" });
  const frameField = field("DICOM frame", frame, "Which frame of the series to analyse (the middle one by default).");
  frameField.hidden = true;
  const fromFile = h("p#from-file.notice.notice-strong", { role: "note", hidden: true,
    text: "Filled in from the DICOM file. Check every field before analysing: what you confirm is what is stored." });

  const form = h("form#analysis-form.new-analysis", { novalidate: true },
    h("h1", { text: "New analysis" }),
    h("div.new-grid", {},
      h("section.card", { "aria-labelledby": "scan-heading" }, h("h2#scan-heading", { text: "Scan" }), dropzone, frameField),
      h("section.card", { "aria-labelledby": "patient-heading" },
        h("h2#patient-heading", { text: "Patient" }),
        fromFile,
        field("Patient ID (required)", patientId, "The hospital's identifier. It is never put in a web address."),
        field("Name", patientName),
        h("div.field-row", {}, field("Age (years)", age), field("Sex", sex)),
        h("div.field-row", {}, field("Modality", modality), field("Body part", bodyPart)),
        field("Clinical note", note))),
    h("div.submit-row", {}, submit, progress, status),
    h("p.notice", { text: "Results are decision support, not a diagnosis." }));

  async function choose(f) {
    status.textContent = "";
    if (!f) return;
    if (f.size > MAX_BYTES) return fail(`“${f.name}” is ${formatBytes(f.size)}; the limit is 20 MB.`);
    const dicom = !TYPES.includes(f.type) && await isDicom(f);
    if (!TYPES.includes(f.type) && !dicom) return fail(`“${f.name}” is not a JPEG, PNG or DICOM image.`);
    file = f;
    uploadKey = null;
    if (previewURL) URL.revokeObjectURL(previewURL);
    previewURL = null;
    fromFile.hidden = true;
    frameField.hidden = true;
    fileInfo.textContent = `${f.name} · ${formatBytes(f.size)}`;
    dropzone.classList.add("has-file");
    if (!dicom) {
      previewURL = URL.createObjectURL(f);
      preview.src = previewURL;
      preview.hidden = false;
      return;
    }
    // The server reads the file's fields; the clinician confirms or corrects them before analysing.
    status.textContent = "Reading the DICOM file…";
    try {
      const d = await readDicomFields(f);
      if (file !== f || !ctx.isCurrent()) return;
      const set = (input, value) => { if (value !== null && value !== undefined && value !== "") input.value = String(value); };
      set(patientId, d.patientId); set(patientName, d.patientName); set(age, d.age); set(sex, d.sex);
      set(modality, d.modality); set(bodyPart, d.bodyPart);
      if (d.preview) { preview.src = d.preview; preview.hidden = false; }
      fileInfo.textContent = `${f.name} · ${formatBytes(f.size)} · DICOM ${d.columns} × ${d.rows}` +
        (d.numberOfFrames > 1 ? `, ${d.numberOfFrames} frames` : "") + (d.seriesDescription ? ` · ${d.seriesDescription}` : "");
      if (d.numberOfFrames > 1) {
        frame.max = String(d.numberOfFrames);
        frame.value = String(Math.floor((d.numberOfFrames - 1) / 2) + 1);
        frameField.hidden = false;
      }
      fromFile.hidden = false;
      // Notes say what to check (a value the file holds twice was not, or only partly, pre-filled).
      status.textContent = (d.notes || []).join(" ");
    } catch (err) {
      if (!ctx.isCurrent() || err.status === 401) return;
      file = null;
      fail(err.message);
    }
  }
  function fail(text) {
    status.textContent = text;
    status.classList.add("error");
    status.setAttribute("role", "alert");
  }

  fileInput.addEventListener("change", () => choose(fileInput.files[0]));
  dropzone.addEventListener("dragover", (e) => { e.preventDefault(); dropzone.classList.add("dragging"); });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragging"));
  dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    dropzone.classList.remove("dragging");
    choose(e.dataTransfer?.files?.[0]);
  });

  form.addEventListener("input", () => { uploadKey = null; });
  form.addEventListener("change", () => { uploadKey = null; });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.classList.remove("error");
    status.removeAttribute("role");
    if (!file) { fail("Choose a scan first."); fileInput.focus(); return; }
    if (!patientId.value.trim()) { fail("Enter the patient ID."); patientId.focus(); return; }
    if (age.value && !(Number.isInteger(Number(age.value)) && age.value >= 0 && age.value <= 150)) {
      fail("Age must be a whole number of years from 0 to 150."); age.focus(); return;
    }
    const data = new FormData();
    if (!frameField.hidden && frame.value) data.append("frame", frame.value);
    for (const input of [patientId, patientName, age, sex, modality, bodyPart, note]) {
      const value = input.value.trim();
      if (value) data.append(input.name, value);
    }
    data.append("image", file, file.name);

    submit.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    status.textContent = "Uploading…";
    try {
      uploadKey ??= newIdempotencyKey();
      const analysis = await uploadAnalysis(data, {
        idempotencyKey: uploadKey,
        onProgress: (fraction) => { progress.value = fraction; },
        onUploaded: () => {
          progress.removeAttribute("value");  // indeterminate while the models run
          status.textContent = "Analysing…";
        },
      });
      if (!ctx.isCurrent()) return;
      ctx.announce("Analysis finished.");
      if (previewURL) URL.revokeObjectURL(previewURL);
      ctx.navigate(`/analyses/${analysis.id}`, { data: analysis });
    } catch (err) {
      if (!ctx.isCurrent() || err.status === 401) return;
      submit.disabled = false;
      progress.hidden = true;
      fail(err.status === 503 ? `The service is busy. Try again in ${err.retryAfter || "a few"} seconds.`
        : err.status === 409 && err.retryAfter ? "This upload is still being analysed. Press Analyse again in a moment for its result."
        : err.message);
    }
  });

  replace(ctx.main, form);
  ctx.ready();
}
