"""Scenarios: what a user or an LLM types is shown as text: markup in patient details and reports
never becomes an element or runs, and right-to-left text is isolated from its neighbours."""

import re
import time

from harness_common import NoAlertPresentException, env, new_patient, paragraphs, printed_paragraphs
from scenarios_print import open_printed_report


XSS = "<img src=x onerror=alert(1)>"
XSS2 = '"><script>alert(2)</script>'


def scenario_xss_note(h):
    h.start_on_new_analysis()
    patient = new_patient("P-XSS")
    patient.update(name=XSS, note=XSS, body_part=XSS2)
    h.sensitive(patient["id"])
    analysis_id = h.upload(patient)

    def no_injection(where, need):
        h.check_no_alert()
        text = h.visible_text()
        for payload in need:
            h.expect(payload in text, f"{where}: the literal text {payload!r} is not visible (innerText)")
        dom = h.js("""return {
            imgX: document.querySelectorAll('img[src="x"]').length,
            onerror: document.querySelectorAll('[onerror]').length,
            scripts: [...document.scripts].filter(s => /alert\\(/.test(s.textContent)).length }""")
        h.expect(dom["imgX"] == 0, f"{where}: {dom['imgX']} injected img[src=\"x\"] in the DOM")
        h.expect(dom["onerror"] == 0, f"{where}: {dom['onerror']} element(s) with an onerror attribute in the DOM")
        h.expect(dom["scripts"] == 0, f"{where}: {dom['scripts']} injected <script> element(s) in the DOM")
        try:
            h.driver.switch_to.alert
            h.fail_soft(f"{where}: an alert is open")
        except NoAlertPresentException:
            pass
        h.harvest()

    h.check_analysis_screen(patient, analysis_id)
    no_injection("analysis page", [XSS, XSS2])
    h.screenshot("analysis")
    h.nav("history", "history")
    h.history_search(patient["id"])
    h.wait(lambda: h.history_links() == [f"/analyses/{analysis_id}"], f"history search for {patient['id']}")
    no_injection("history page", [XSS])
    h.screenshot("history")
    h.go(f"/analyses/{analysis_id}/report")
    h.wait(lambda: h.js("return document.readyState") == "complete", "the report to load")
    time.sleep(0.3)
    no_injection("report", [XSS, XSS2])
    h.screenshot("report")


def scenario_bidi_isolation(h):
    """Right-to-left patient text is shown isolated (bdi / dir=auto): it can never reorder its
    neighbours. A bidi override in a patient ID is refused by the server with a message naming it."""
    h.start_on_new_analysis()
    patient = new_patient("P-BIDI")
    patient.update(name="דוד כהן 12", body_part="מוח שמאל", note="בדיקה חוזרת 3")
    h.sensitive(patient["id"], patient["name"], patient["body_part"], patient["note"])
    analysis_id = h.upload(patient)
    h.check_analysis_screen(patient, analysis_id)

    isolation = """
        const iso = (el) => !!el && getComputedStyle(el).unicodeBidi === 'isolate';
        const q = (css) => document.querySelector(css);
        return Object.fromEntries(arguments[0].map(css => [css, iso(q(css))]));"""
    shown = h.js(isolation, ["#patient-block #patient-id bdi", "#patient-block #patient-name bdi",
                             "#patient-block #body-part bdi", "#patient-block #patient-note", "#delete-dialog-text bdi"])
    for css, ok in shown.items():
        h.expect(ok, f"analysis page: {css} is not isolated (unicode-bidi: isolate)")
    h.expect(h.js("return document.querySelector('#patient-block #patient-name').innerText.trim()") == patient["name"],
             "the name is shown as typed")
    h.screenshot("analysis")

    h.nav("history", "history")
    h.history_search(patient["id"])
    h.wait(lambda: h.history_links() == [f"/analyses/{analysis_id}"], f"history search for {patient['id']}")
    cells = h.js("""return [...document.querySelectorAll('table#history-table tbody tr td bdi')]
                      .map(b => [b.textContent, getComputedStyle(b).unicodeBidi])""")
    texts = [t for t, _ in cells]
    for value in (patient["id"], patient["name"], patient["body_part"]):
        h.expect(value in texts, f"history: {value!r} is not in its own bdi (cells: {texts!r})")
    h.expect(all(style == "isolate" for _, style in cells), f"history: a bdi is not isolated: {cells!r}")
    label = h.js("return document.querySelector('table#history-table a.analysis-link').getAttribute('aria-label')")
    h.expect("\u2068" + patient["id"] + "\u2069" in label, f"history: the link's aria-label does not isolate the ID: {label!r}")

    h.go(f"/analyses/{analysis_id}/report")
    h.wait(lambda: h.js("return document.readyState") == "complete", "the report to load")
    report = h.js("""return [...document.querySelectorAll('section.patient dd')].map(dd => {
                       const b = dd.querySelector('bdi');
                       return [dd.innerText.trim(), !!b && getComputedStyle(b).unicodeBidi === 'isolate']; })""")
    for text, ok in report:
        h.expect(ok, f"report: the patient value {text!r} is not isolated")
    h.expect(any(t == patient["name"] for t, _ in report), f"report: the name is missing from {report!r}")
    h.screenshot("report")

    # A right-to-left override in the ID: the server refuses it and the form says why.
    h.go("/analyses/new")
    h.wait_screen("new")
    bad = dict(new_patient("P-RLO"))
    h.fill_analysis_form(bad)
    h.js("document.querySelector('input#patient-id').value = 'BH-\u202E1234'")
    with h.allow(rf"^{re.escape(h.base)}/api/analyses - Failed to load resource: the server responded with a status of 400 \(Bad Request\)$",
                 "the deliberate 400 for a bidi override in the patient ID"):
        h.find("button#analyse-submit").click()
        h.wait(lambda: "U+202E" in h.find("p#upload-status").text, "the form to show the server's refusal naming U+202E")
    h.expect(h.path() == "/analyses/new", f"a refused upload left the form: {h.path()}")
    h.screenshot("refused")


def check_report_markup_is_text(h, where, literals):
    """Markup in a report (or the patient text it quotes) is text: every literal is visible as typed,
    none became an element (img[src=x], [onerror], <script>, <b>), no injected code ran, no alert, and
    (through harvest) no CSP report of an inline handler or script that tried to run."""
    h.check_no_alert()
    text = h.visible_text()
    for literal in literals:
        h.expect(literal in text, f"{where}: the literal text {literal!r} is not visible")
    dom = h.js("""return { ran: window.__reportXSS === undefined ? null : window.__reportXSS,
        imgX: document.querySelectorAll('img[src="x"]').length, onerror: document.querySelectorAll('[onerror]').length,
        scripts: [...document.scripts].filter(s => /__reportXSS|alert\\(/.test(s.textContent)).length,
        bold: document.querySelectorAll('#report b, section.report-text b').length }""")
    h.expect(dom["ran"] is None, f"{where}: injected code ran (window.__reportXSS = {dom['ran']!r})")
    for key in ("imgX", "onerror", "scripts", "bold"):
        h.expect(dom[key] == 0, f"{where}: {dom[key]} injected element(s) ({key}) in the DOM")
    h.harvest()


SCRIPT_MARKUP = "<script>window.__reportXSS = 'script'</script>"
IMG_MARKUP = "<img src=x onerror=\"window.__reportXSS = 'img'\">"


def scenario_report_markup(h):
    """Markup in a report is text: the body part a user typed is markup (shown in the patient details, and
    never quoted by the draft: report facts are a closed vocabulary), a clinician's edit adds <script> and
    <img onerror>; nothing runs or becomes an element, on the card, in the history, in the editor, in the
    printed report."""
    h.start_on_new_analysis()
    patient = new_patient("P-RXSS")
    patient.update(body_part=XSS2)
    h.sensitive(patient["id"], patient["name"], patient["note"])
    analysis_id = h.upload(patient)
    h.wait_report("draft", 1)
    edit = f"{SCRIPT_MARKUP} and {IMG_MARKUP} and <b>bold</b> & {XSS}"

    def no_markup(where, literals):
        check_report_markup_is_text(h, where, literals)

    r = h.report()
    h.expect(not any(XSS2 in p for p in r["paragraphs"]), f"free text typed as body part {XSS2!r} must not reach the draft: {r['paragraphs']}")
    no_markup("analysis page, template draft", [XSS2])

    h.find("button#report-edit").click()
    h.wait(lambda: h.report()["shown"]["report-editor"], "form#report-editor to open")
    h.append_to_editor("\n\n" + edit)
    h.find("button#report-save").click()
    r = h.wait_report("draft", 2)
    h.expect(r["paragraphs"][-1] == edit, f"the edit should be shown as typed: {r['paragraphs'][-1]!r}")
    time.sleep(0.5)   # an injected image would have failed to load and fired onerror by now
    no_markup("analysis page, edited draft", [SCRIPT_MARKUP, IMG_MARKUP, XSS2])
    h.find("details#report-history summary").click()
    for d in h.finds("#report-versions details.version-text summary"):
        d.click()
    time.sleep(0.3)
    no_markup("version history", [SCRIPT_MARKUP, IMG_MARKUP])
    h.screenshot("edited")

    h.find("button#report-sign").click()
    h.confirm_signing("Sign this report?")
    h.wait_report("signed", 3)
    h.driver.refresh()
    h.wait_screen("analysis")
    time.sleep(0.5)
    no_markup("analysis page after a reload", [SCRIPT_MARKUP, IMG_MARKUP, XSS2])
    printed = open_printed_report(h, analysis_id)
    h.expect(printed["paragraphs"] and printed["paragraphs"][-1] == edit, f"the printed report should show the edit as text: {printed['paragraphs']}")
    time.sleep(0.5)
    no_markup("printed report", [SCRIPT_MARKUP, IMG_MARKUP, XSS2])
    h.screenshot("printed")


def scenario_report_llm(h):
    """A stack whose LLM (a local stand-in) answers with markup: the draft is shown as text, "Drafted by"
    the model, and nothing in it runs, on the card or in the printed report."""
    reply, model = env("MEDISCOPE_LLM_REPLY", required=True), env("MEDISCOPE_LLM_MODEL", required=True)
    h.start_on_new_analysis()
    patient = new_patient("P-LLM")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    analysis_id = h.upload(patient)
    r = h.wait_report("draft", 1)
    api = h.api_report(analysis_id)
    h.expect(api["source"] == {"kind": "llm", "model": model}, f"the draft should come from the LLM: {api['source']}")
    h.expect(r["source"] == f"Drafted by {model}", f"#report-source should name the model: {r['source']!r}")
    h.expect(r["paragraphs"] == paragraphs(reply), f"the card should show the LLM's text as text:\n  shown {r['paragraphs']}\n  reply {paragraphs(reply)}")
    h.expect([v["cells"][2] for v in r["versions"]] == [f"LLM: {model}"], f"history should name the model: {r['versions']}")

    def nothing_ran(where):
        time.sleep(0.5)   # an injected image would have failed to load and fired onerror by now
        check_report_markup_is_text(h, where, ["<b>no tumour</b>", "<script>window.__reportXSS = 'llm script'</script>", "<img src=x onerror="])

    nothing_ran("analysis page")
    h.screenshot("llm-draft")
    printed = open_printed_report(h, analysis_id)
    h.expect(printed["paragraphs"] == printed_paragraphs(reply), f"the printed report should show the LLM's text: {printed['paragraphs']}")
    h.expect(printed["unsigned"], "the LLM's draft should print as an unsigned draft")
    nothing_ran("printed report")
    h.screenshot("printed")
