"""Scenarios of the printed report: its layout on A4 and Letter, a signed and an unsigned report, and
the source facts and line breaks of a DICOM analysis (issue 21)."""

import base64
import os
import re
import shutil
import tempfile

from harness_common import PrintOptions, new_patient, printed_paragraphs


PAPER_CM = {"A4": (21.0, 29.7), "Letter": (21.59, 27.94)}


def scenario_report_print(h):
    """The printable report on A4 and Letter: at most two pages for a standard analysis (two results and
    the report's text), nothing cut off; first as the unsigned draft, then signed (the signature block
    filled in, its date and version on one line each)."""
    h.start_on_new_analysis()
    patient = new_patient("P-PRINT")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    analysis_id = h.upload(patient)
    # The draft is written in the background: print once it is there, as a clinician would.
    h.wait_report("draft", 1)
    check_print_layout(h, analysis_id, "draft", signed=False)
    h.driver.back()
    h.wait_screen("analysis")
    h.find("button#report-sign").click()
    h.confirm_signing("Sign this report?")
    h.wait_report("signed", 2)
    check_print_layout(h, analysis_id, "signed", signed=True)


def check_print_layout(h, analysis_id, label, signed):
    h.go(f"/analyses/{analysis_id}/report")
    h.wait(lambda: h.js("return document.readyState === 'complete' && [...document.images].every(i => i.complete && i.naturalWidth > 0)"),
           "the report and all its images to load")
    h.harvest()
    state = h.js("""return { text: document.querySelectorAll('section.report-text > p[dir]').length,
                             unsigned: !!document.querySelector('.unsigned-draft'), signed: !!document.querySelector('section.signature.signed') }""")
    h.require(state == {"text": state["text"], "unsigned": not signed, "signed": signed} and state["text"] > 0,
              f"{label}: the report should hold the report text and be {'signed' if signed else 'an unsigned draft'}: {state}")

    # Print media at the printable width of A4 (210 mm - 2 x 15 mm margins, 96 px per inch).
    h.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    h.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                             {"width": round(180 / 25.4 * 96), "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    layout = h.js("""const d = document.documentElement;
        const lines = (el) => { const r = document.createRange(); r.selectNodeContents(el);
          return new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.bottom))).size; };
        return { scroll: d.scrollWidth, client: d.clientWidth,
                 hint: getComputedStyle(document.querySelector('.print-hint')).display,
                 images: [...document.images].map(i => i.getBoundingClientRect().right <= d.clientWidth + 0.5),
                 signature: [...document.querySelectorAll('section.signature.signed .value')].map(v => [v.textContent.trim(), lines(v)]) }""")
    h.expect(layout["hint"] == "none", f"{label}: the on-screen print hint is printed")
    h.expect(layout["scroll"] <= layout["client"], f"{label}: the printed page is wider than A4's printable width: {layout}")
    h.expect(all(layout["images"]), f"{label}: an image runs past the right margin in print: {layout}")
    if signed:
        h.expect(len(layout["signature"]) == 3 and all(n == 1 for _, n in layout["signature"]),
                 f"{label}: the signer, the date and the version should each print on one line: {layout['signature']}")
    h.screenshot(f"print-media-{label}")
    h.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    h.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

    for paper, (width, height) in PAPER_CM.items():
        options = PrintOptions()
        options.page_width, options.page_height = width, height
        options.background = True
        pdf = base64.b64decode(h.driver.print_page(options))
        pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
        path = os.path.join(h.artifacts, f"{h.scenario}-{label}-{paper}.pdf")
        with open(path, "wb") as f:
            f.write(pdf)
        print(f"{label}, {paper}: {pages} page(s), {len(pdf)} bytes -> {path}")
        h.expect(pdf.startswith(b"%PDF"), f"{label}, {paper}: the print is not a PDF")
        # One page while reports had no text; the report's paragraphs (issue 12) take it onto a second.
        h.expect(1 <= pages <= 2, f"{label}, {paper}: a standard report (two results and the report text) should print on "
                                  f"at most two pages, got {pages}")


def open_printed_report(h, analysis_id):
    """Opens /analyses/{id}/report; what its report section and signature block show."""
    h.go(f"/analyses/{analysis_id}/report")
    h.wait(lambda: h.js("return document.readyState") == "complete", "the printed report to load")
    h.harvest()
    return h.js("""
        const q = (css) => document.querySelector(css);
        const value = (field) => { const p = [...document.querySelectorAll('section.signature p')]
            .find(p => (p.querySelector('.field') || {}).textContent === field);
          const v = p && p.querySelector('.value'); return v ? v.textContent.trim() : null; };
        return {
          paragraphs: [...document.querySelectorAll('section.report-text > p[dir]')].map(p => p.textContent),
          unsigned: q('.unsigned-draft') ? q('.unsigned-draft').textContent.trim() : null,
          signed: !!q('section.signature.signed'),
          signedBy: value('Signed by'), date: value('Date'), version: value('Version'),
          blanks: document.querySelectorAll('section.signature .blank').length,
          text: document.body.innerText,
        };""")


def scenario_report_printed(h):
    """The printed report prints the newest version: a signed one with the signer's name, the date and
    the version; a draft nobody signed marked "Unsigned draft" above its text, with blank signature lines."""
    h.start_on_new_analysis()
    signed_patient, draft_patient = new_patient("P-PRS"), new_patient("P-PRD")
    h.sensitive(*[p[k] for p in (signed_patient, draft_patient) for k in ("id", "name", "note", "body_part")])

    signed_id = h.upload(signed_patient)
    h.wait_report("draft", 1)
    h.find("button#report-sign").click()
    h.confirm_signing("Sign this report?")
    h.wait_report("signed", 2)
    api = h.api_report(signed_id)
    h.expect(api["signedBy"] == h.clinician and api["version"] == 2, f"the API after signing: {api}")
    printed = open_printed_report(h, signed_id)
    h.expect(printed["paragraphs"] == printed_paragraphs(api["text"]),
             f"the printed report should show the signed text:\n  printed {printed['paragraphs']}\n  signed  {printed_paragraphs(api['text'])}")
    h.expect(printed["signed"] and printed["signedBy"] == h.clinician and printed["version"] == "2" and printed["date"],
             f"the signature block should name {h.clinician!r}, a date and version 2: {printed}")
    h.expect(not printed["unsigned"] and "Unsigned draft" not in printed["text"], "a signed report is marked as an unsigned draft")
    h.screenshot("signed")

    h.go("/analyses/new")
    h.wait_screen("new")
    draft_id = h.upload(draft_patient)
    h.wait_report("draft", 1)
    api = h.api_report(draft_id)
    printed = open_printed_report(h, draft_id)
    h.expect(printed["paragraphs"] == printed_paragraphs(api["text"]), f"the printed draft text: {printed['paragraphs']}")
    h.expect(printed["unsigned"] and printed["unsigned"].startswith("Unsigned draft"),
             f"a never-signed report should carry the 'Unsigned draft' note (.unsigned-draft): {printed['unsigned']!r}")
    h.expect(not printed["signed"] and printed["signedBy"] is None and printed["blanks"] == 3,
             f"a never-signed report should leave the three signature lines blank: {printed}")
    h.expect("Signed by" not in printed["text"], "a never-signed report says 'Signed by'")
    h.screenshot("unsigned")

    check_printed_dicom_source_and_lines(h)


def check_printed_dicom_source_and_lines(h):
    """Issue 21: the printed report of a DICOM analysis says how its image came from the file (format,
    frame, window, series description, Study UID), and a signed numbered list prints one item a line,
    as text: its line breaks are rendered (innerText, height), no markup in it becomes an element."""
    import pydicom  # Debian's python3-pydicom: its test files are real scanner output
    ds = pydicom.dcmread(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "MR_small.dcm"))
    series = "Axial T2 <b>FLAIR</b> & co"   # text from the file stays text
    ds.SeriesDescription = series
    folder = tempfile.mkdtemp(prefix="mediscope-dicom-")
    path = os.path.join(folder, "IM000001.dcm")
    ds.save_as(path)
    study_uid = str(ds.StudyInstanceUID)
    h.sensitive(str(ds.PatientID).strip(), str(ds.PatientName))
    try:
        h.go("/analyses/new")
        h.wait_screen("new")
        h.find("input#scan-file").send_keys(path)
        h.wait(lambda: not h.js("return document.querySelector('#from-file').hidden"), "the form filled in from the DICOM file")
        h.find("button#analyse-submit").click()
        analysis_id = h.wait_for_analysis()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    h.wait_report("draft", 1)
    items = ["Findings:", "1. Tumour type: see the results table.", "2. Heatmap: the regions that drove the prediction.",
             "3. <b>Review</b> the images."]
    signed = h.api("POST", f"/api/analyses/{analysis_id}/report/sign",
                   {"text": "\n".join(items) + "\n\nSigned after review.", "baseVersion": 1})
    h.require(signed["status"] == 200, f"signing the numbered list: {signed}")

    open_printed_report(h, analysis_id)
    facts = dict(h.js("""return [...document.querySelectorAll('section.source dl > div')]
        .map(d => [d.querySelector('dt').textContent.trim(), d.querySelector('dd').innerText.trim()])"""))
    h.expect(facts.get("Format") == "DICOM" and facts.get("Frame") == "1 of 1", f"the source facts should say DICOM, frame 1 of 1: {facts}")
    h.expect("centre 600, width 1600" in (facts.get("Window") or ""), f"the window the file gave (600/1600) should be printed: {facts}")
    h.expect(facts.get("Series") == series, f"the series description should be printed as text: {facts}")
    h.expect(facts.get("Study UID") == study_uid, f"the Study Instance UID {study_uid} should be printed: {facts}")
    shown = h.js("""const p = document.querySelector('section.report-text > p[dir]');
        return p ? { text: p.innerText, lines: p.getBoundingClientRect().height / parseFloat(getComputedStyle(p).lineHeight),
                     bold: document.querySelectorAll('section.report-text b').length } : null""")
    h.require(shown is not None, "the printed report shows no report text")
    h.expect(shown["text"] == "\n".join(items), f"the numbered list should keep its lines as rendered text: {shown['text']!r}")
    h.expect(shown["lines"] >= len(items) - 0.1, f"the list should take {len(items)} lines on the page, it takes {shown['lines']:.1f}")
    h.expect(shown["bold"] == 0, "markup in the signed text became an element")
    h.screenshot("dicom-printed")
