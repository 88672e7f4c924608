"""Scenarios of one analysis: a scan by drag and drop with upload progress, a DICOM file that fills in
the form, deleting an analysis, and an out-of-scope image that leads with its warning."""

import base64
import os
import re

from harness_common import ROOT, new_patient
from scenarios_print import open_printed_report


def scenario_dicom_prefill(h):
    """A DICOM file from a scanner: the server reads its fields, the form is pre-filled with them and a
    preview of the windowed frame for the clinician to confirm, and the analysis runs on it."""
    import pydicom  # Debian's python3-pydicom: its test files are real scanner output
    path = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "MR_small.dcm")
    ds = pydicom.dcmread(path)
    want_id = str(ds.PatientID).strip()
    h.sensitive(want_id, str(ds.PatientName))
    h.start_on_new_analysis()
    h.find("input#scan-file").send_keys(path)
    h.wait(lambda: not h.js("return document.querySelector('#from-file').hidden"), "the 'filled in from the DICOM file' notice")
    h.expect(h.find("input#patient-id").get_attribute("value") == want_id,
             f"input#patient-id should be pre-filled with {want_id!r}; it holds {h.find('input#patient-id').get_attribute('value')!r}")
    h.expect(h.find("select#modality").get_attribute("value") == "MRI", "the modality MR should pre-fill MRI")
    h.wait_images("img#scan-preview")
    h.expect(not h.find("input#dicom-frame").is_displayed(), "a single-frame file should not offer a frame choice")
    info = h.find("p#scan-file-info").text
    h.expect("DICOM" in info and "64" in info, f"p#scan-file-info should describe the DICOM file; it says {info!r}")
    h.screenshot("prefilled")
    h.type_into("textarea#note", "confirmed from the file")
    h.find("button#analyse-submit").click()
    analysis_id = h.wait_for_analysis()
    h.check_analysis_screen(None, analysis_id)
    shown = h.js("return document.querySelector('#patient-block #patient-id').innerText.trim()")
    h.expect(shown == want_id, f"the analysis shows patient {shown!r}, the file says {want_id!r}")
    caption = h.find("figcaption#scan-caption").text
    h.expect("DICOM frame 1 of 1" in caption, f"the scan caption should say which frame and window were used: {caption!r}")
    h.screenshot("analysis")


def scenario_delete_analysis(h):
    h.start_on_new_analysis()
    patient = new_patient("P-DEL")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    analysis_id = h.upload(patient)
    h.check_analysis_screen(patient, analysis_id)

    # Cancelling keeps it.
    h.find("button#delete-analysis").click()
    h.wait(lambda: h.js("return document.querySelector('dialog#delete-dialog').open"), "the delete confirmation dialog")
    h.expect(patient["id"] in h.find("dialog#delete-dialog").text, "the confirmation does not say which patient's analysis it removes")
    h.screenshot("confirm")
    h.find("button#delete-cancel").click()
    h.wait(lambda: not h.js("return document.querySelector('dialog#delete-dialog').open"), "the dialog to close on cancel")
    h.expect(h.path() == f"/analyses/{analysis_id}", f"cancel left the analysis page: {h.path()}")

    # Confirming removes it: back to the history, which no longer lists it.
    h.find("button#delete-analysis").click()
    h.wait(lambda: h.js("return document.querySelector('dialog#delete-dialog').open"), "the delete confirmation dialog")
    h.find("button#delete-confirm").click()
    h.wait_screen("history")
    h.expect(h.exists("p#history-notice"), "the history does not say the analysis was deleted")
    h.history_search(patient["id"])
    h.wait(lambda: h.history_links() == [] and h.find("p#history-empty").is_displayed(),
           f"the history search for {patient['id']} to come back empty after the delete")
    h.screenshot("history-after-delete")

    # Its address now says so (the API's 404 shows in the console as a failed resource: allowed here only).
    with h.allow(rf"^{re.escape(h.base)}/api/analyses/{analysis_id} - Failed to load resource: the server responded with a status of 404 \(Not Found\)$",
                 "the deleted analysis is fetched on purpose"):
        h.go(f"/analyses/{analysis_id}")
        h.wait_screen("notfound")
        h.expect("not found" in h.visible_text().lower(), "the deleted analysis's address does not say it was not found")
        h.harvest()
    h.screenshot("deleted-address")


OUT_OF_SCOPE_WARNING = "This image does not look like a scan the model was made for: its numbers are not meaningful."


def scenario_out_of_scope(h):
    """Issue 22: a photograph uploaded as an MRI leads with the warning and its reasons; its numbers are only
    behind it, folded and muted; the history marks the row; the printed report carries the warning above
    the results. A brain MRI slice shows none of it, only a quiet "in scope" line."""
    photo = os.path.join(ROOT, "models/cache/input-check/out-of-scope/photo__astronaut.png")
    h.require(os.path.exists(photo), f"{photo} is missing: `make test` saves the input-check sets first")
    h.start_on_new_analysis()
    patient = new_patient("P-OOS")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    analysis_id = h.upload(patient, scan=photo)
    h.wait_screen("analysis")
    shown = h.js("""
        const q = (css) => document.querySelector(css);
        const warning = q('section#input-check-warning'), details = q('details#out-of-scope-results');
        const before = (a, b) => !!(a && b && (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING));
        return {
          warning: warning ? warning.innerText : null,
          role: warning ? warning.getAttribute('role') : null,
          reasons: [...document.querySelectorAll('#input-check-reasons li')].map(li => li.dataset.code),
          folded: details ? !details.open : null,
          resultsVisible: [...document.querySelectorAll('article.result')].some(a => a.checkVisibility()),
          warningFirst: before(warning, q('p#decision-notice')) && before(warning, details),
          verdict: (q('p#input-check-status') || {dataset: {}}).dataset.verdict,
        };""")
    h.require(shown["warning"] is not None, "no section#input-check-warning on an out-of-scope analysis")
    h.expect(OUT_OF_SCOPE_WARNING in shown["warning"], f"the warning should say {OUT_OF_SCOPE_WARNING!r}; it says {shown['warning']!r}")
    h.expect(shown["role"] == "alert", "the warning is not announced (role=alert)")
    h.expect("unfamiliar" in shown["reasons"] and "colour" in shown["reasons"], f"the reasons shown: {shown['reasons']}")
    h.expect(shown["folded"] is True and not shown["resultsVisible"], "the numbers should be folded behind the warning at first")
    h.expect(shown["warningFirst"], "the warning should come before the notice and the numbers")
    h.expect(shown["verdict"] == "out_of_scope", f"p#input-check-status says {shown['verdict']!r}")
    h.screenshot("warning")
    # The numbers are still there, one click away, muted.
    h.check_analysis_screen(patient, analysis_id)
    opacity = float(h.js("return getComputedStyle(document.querySelector('#out-of-scope-results .results')).opacity"))
    h.expect(opacity < 1, f"the numbers behind the warning should be de-emphasised (opacity {opacity})")
    h.screenshot("numbers-behind-warning")

    # The history marks the row.
    h.nav("history", "history")
    h.history_search(patient["id"])
    h.wait(lambda: h.history_links() == [f"/analyses/{analysis_id}"], f"the history search for {patient['id']}")
    row = h.js("""const tr = document.querySelector('table#history-table tbody tr');
        return { marked: tr.classList.contains('out-of-scope-row'), badge: (tr.querySelector('.scope-badge') || {}).textContent || null };""")
    h.expect(row["marked"] and row["badge"] and "Out of scope" in row["badge"], f"the history row is not marked: {row}")
    h.screenshot("history")

    # The printed report: the warning above the images and findings.
    printed = open_printed_report(h, analysis_id)
    order = h.js("""const w = document.querySelector('section.out-of-scope'), f = document.querySelector('section.findings');
        return { warning: !!w, first: !!(w && f && (w.compareDocumentPosition(f) & Node.DOCUMENT_POSITION_FOLLOWING)),
                 muted: !!(f && f.classList.contains('muted')) };""")
    h.expect(OUT_OF_SCOPE_WARNING in printed["text"], "the printed report does not carry the warning")
    h.expect(order["warning"] and order["first"] and order["muted"], f"the printed warning should lead and mute the findings: {order}")
    h.screenshot("printed")

    # A brain MRI slice: no warning, a quiet line that it was checked.
    h.go("/analyses/new")
    h.wait_screen("new")
    slice_id = h.upload(new_patient("P-INS"))
    h.check_analysis_screen(None, slice_id)
    h.expect(not h.exists("section#input-check-warning") and not h.exists("details#out-of-scope-results"),
             "an in-scope analysis shows the out-of-scope warning")
    status = h.find("p#input-check-status")
    h.expect(status.get_attribute("data-verdict") == "in_scope" and "in the models' scope" in status.text,
             f"p#input-check-status on an in-scope analysis: {status.get_attribute('data-verdict')!r} {status.text!r}")


def scenario_drop_and_progress(h):
    """The scan arrives by drag and drop; the upload shows progress, then an analysing state."""
    h.start_on_new_analysis()
    h.wait_screen("new")
    with open(h.scan, "rb") as f:
        payload = base64.b64encode(f.read()).decode("ascii")
    name = os.path.basename(h.scan)
    # A real File in a DataTransfer, dropped with the events a browser fires for a drag from the desktop.
    h.js("""
        const [b64, name] = arguments;
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, { type: 'image/jpeg' }));
        const zone = document.getElementById('dropzone');
        for (const type of ['dragenter', 'dragover', 'drop']) {
          zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
        }""", payload, name)
    h.wait_images("img#scan-preview")
    h.expect(name in h.find("#scan-file-info").text, f"the dropped file's name {name!r} is not shown next to the preview")
    patient = new_patient("P-DROP")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    h.fill_analysis_form(patient, pick_file=False)

    # Every state the upload passes through, recorded as it happens (a local upload is too fast to poll).
    h.js("""
        window.__uploadStates = [];
        const progress = document.getElementById('upload-progress'), status = document.getElementById('upload-status');
        const record = () => window.__uploadStates.push({ status: status.textContent, hidden: progress.hidden,
                                                          value: progress.getAttribute('value') });
        new MutationObserver(record).observe(document.getElementById('analysis-form'),
          { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['value', 'hidden'] });""")
    h.find("button#analyse-submit").click()
    analysis_id = h.wait_for_analysis()
    h.expect(re.fullmatch(r"[0-9A-Z]{26}", analysis_id or ""), f"no analysis id in the address after the upload: {h.path()}")
    states = h.js("return window.__uploadStates || null")
    if states is None:   # the page navigated for real: the router should have kept the document
        h.fail_soft("the upload reloaded the page instead of showing the result in place")
        return
    print(f"upload states: {states}")
    h.expect(any(s["status"].startswith("Uploading") and not s["hidden"] for s in states),
             "no 'Uploading' state with a visible progress bar")
    h.expect(any(s["value"] is not None and float(s["value"]) > 0 for s in states),
             "the progress bar never showed upload progress (value > 0)")
    analysing = [i for i, s in enumerate(states) if s["status"].startswith("Analys") and not s["hidden"] and s["value"] is None]
    uploading = [i for i, s in enumerate(states) if s["status"].startswith("Uploading")]
    h.expect(analysing, "no 'Analysing' state with an indeterminate progress bar (no value) after the upload")
    h.expect(analysing and uploading and uploading[0] < analysing[0], f"'Analysing' did not follow 'Uploading': {states}")
    h.check_analysis_screen(patient, analysis_id)
    h.screenshot("result")
