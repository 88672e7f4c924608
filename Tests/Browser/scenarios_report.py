"""Scenarios of the Report card (issue 12): the draft written in the background, editing, a change
made meanwhile, signing and amending, and unsaved text that leaving the page would lose."""

import re
import uuid

from harness_common import new_patient, norm, paragraphs
from scenarios_print import open_printed_report


# Records every state the Report card passes through, from before the upload on (the router keeps the
# document, so the recorder lives on into the analysis screen; a page load would lose it).
REPORT_RECORDER = """
    window.__reportStates = [];
    const record = () => {
      const r = document.querySelector('section#report');
      if (!r) return;
      const body = r.querySelector('#report-body'), pending = r.querySelector('#report-pending');
      const state = { status: r.dataset.status, busy: body && body.getAttribute('aria-busy'),
                      pending: pending && pending.getClientRects().length ? pending.textContent : null,
                      text: (r.querySelector('#report-text') || {}).textContent || null };
      const last = window.__reportStates[window.__reportStates.length - 1];
      if (JSON.stringify(last) !== JSON.stringify(state)) window.__reportStates.push(state);
    };
    new MutationObserver(record).observe(document.getElementById('main'),
      { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['data-status', 'aria-busy'] });"""


def check_template_draft(h, analysis_id, facts):
    """The draft of the browser stack (no LLM configured): the template, saying why, with the results."""
    r = h.report()
    api = h.api_report(analysis_id)
    h.expect(api["status"] == "draft" and api["version"] == 1 and len(api["versions"]) == 1,
             f"GET /api/analyses/{analysis_id}: the report should be draft version 1 with one version: {api}")
    h.expect(api["source"] == {"kind": "template", "reason": "no LLM is configured"},
             f"the browser stack has no LLM: the draft should come from the template: {api['source']}")
    h.expect(r["paragraphs"] == paragraphs(api["text"]),
             f"#report-text should show the draft's paragraphs as the API gives them:\n  shown {r['paragraphs']}\n  API   {paragraphs(api['text'])}")
    for res in facts["results"]:
        h.expect(norm(res["title"]) in norm(r["text"]) and norm(res["prediction"]) in norm(r["text"]),
                 f"the draft should name {res['title']!r} and its prediction {res['prediction']!r}: {r['text']!r}")
    h.expect(r["source"] == "Written from the results (template): no LLM is configured",
             f"#report-source should say where the draft came from and why; it says {r['source']!r}")
    h.expect(r["badge"] == "Draft", f"#report-status should say 'Draft'; it says {r['badge']!r}")
    h.expect(r["shown"]["report-edit"] and r["shown"]["report-sign"] and not r["shown"]["report-amend"],
             f"a draft offers Edit and Sign, not Amend: {r['shown']}")
    h.expect(not r["shown"]["report-editor"], "the editor is open before Edit was pressed")
    h.expect([(v["number"], v["status"]) for v in r["versions"]] == [("1", "draft")]
             and r["versions"][0]["cells"][2] == "Template (no LLM is configured)",
             f"the version history should list version 1, a template draft: {r['versions']}")
    return api


def scenario_report_draft(h):
    """The report is drafted in the background after the upload: the card says so (busy, live region),
    then shows the draft when it is written, in the same document (no reload); the template's draft
    says where it came from. A reload shows the draft at once."""
    h.start_on_new_analysis()
    patient = new_patient("P-DRAFT")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    h.fill_analysis_form(patient)
    h.js(REPORT_RECORDER)
    h.find("button#analyse-submit").click()
    analysis_id = h.wait_for_analysis()
    h.wait_report("draft", 1)
    states = h.js("return window.__reportStates || null")
    h.require(states is not None, "the page was reloaded between the upload and the draft (the state recorder is gone)")
    print(f"report states: {states}")
    pending = [i for i, s in enumerate(states) if s["status"] == "pending"]
    drafted = [i for i, s in enumerate(states) if s["status"] == "draft"]
    h.expect(pending and states[pending[0]]["pending"] == "Drafting the report…" and states[pending[0]]["busy"] == "true",
             f"while the draft is written the card should say 'Drafting the report…' with aria-busy=true: {states}")
    h.expect(pending and drafted and pending[0] < drafted[0] and states[drafted[0]]["busy"] == "false" and states[drafted[0]]["text"],
             f"the draft should follow the pending state, with aria-busy=false and its text: {states}")
    facts = h.check_analysis_screen(patient, analysis_id)
    check_template_draft(h, analysis_id, facts)
    h.wait(lambda: h.report()["live"] == "The draft report is ready.", "#report-live to announce the draft")
    h.expect(not h.report()["error"], f"#report-error shows {h.report()['error']!r}")
    h.screenshot("draft")

    # Its address shows the draft directly (no pending state to wait through).
    h.driver.refresh()
    h.wait_screen("analysis")
    r = h.report()
    h.expect(r and r["status"] == "draft" and r["version"] == "1" and r["paragraphs"],
             f"after a reload the card should show draft version 1 at once: {r}")
    h.harvest()


def scenario_report_sign(h):
    """A clinician edits the draft (an empty text is refused in the page), meets a change made meanwhile
    (409: the card reloads, says so, keeps the text), signs after a confirmation, then amends; the
    history lists every version as the API does, and the printed report shows the amendment's signer."""
    h.start_on_new_analysis()
    patient = new_patient("P-SIGN")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    analysis_id = h.upload(patient)
    facts = h.check_analysis_screen(patient, analysis_id)
    h.wait_report("draft", 1)
    draft = check_template_draft(h, analysis_id, facts)
    tag = uuid.uuid4().hex[:8]
    edited = f"Reviewed against the scan and both heatmaps, ref {tag}e."
    theirs = f"Text saved meanwhile in another window, ref {tag}t."
    mine = f"My change after the conflict, ref {tag}m."
    amendment = f"Amendment: the prior study was compared as well, ref {tag}a."
    h.sensitive(edited, theirs, mine, amendment)

    # Edit: the editor opens with the draft, focused; an empty text never leaves the page.
    h.find("button#report-edit").click()
    h.wait(lambda: h.report()["shown"]["report-editor"], "form#report-editor to open")
    r = h.report()
    h.expect(h.active_id() == "report-editor-text", f"Edit should focus the textarea; focus is on {h.active_id()!r}")
    h.expect(r["editorValue"] == draft["text"], f"the editor should hold the draft: {r['editorValue']!r}")
    h.expect(r["save"] == "Save draft" and r["editorLabel"] == "Report text", f"editor button/label: {r['save']!r} / {r['editorLabel']!r}")
    h.expect(not r["shown"]["report-edit"] and not r["shown"]["report-sign"], "Edit and Sign stay shown while editing")
    h.find("textarea#report-editor-text").clear()
    h.find("button#report-save").click()
    h.wait(lambda: "empty" in (h.report()["error"] or ""), "#report-error to refuse an empty text")
    h.expect(h.api_report(analysis_id)["version"] == 1, "an empty text was sent to the server")
    h.js("document.querySelector('#report-editor-text').value = arguments[0]", draft["text"])
    h.append_to_editor("\n\n" + edited)
    h.find("button#report-save").click()
    r = h.wait_report("draft", 2)
    h.expect(r["paragraphs"] == paragraphs(draft["text"]) + [edited], f"the saved draft should be the draft plus the edit: {r['paragraphs']}")
    h.expect(not r["shown"]["report-editor"] and not r["error"], f"after saving the editor should close without an error: {r}")
    h.expect(r["source"] == f"Written by {h.clinician} · first drafted from the results (template)",
             f"#report-source after the edit: {r['source']!r}")
    h.expect(h.active_id() == "report-edit", f"after saving, focus should return to Edit; it is on {h.active_id()!r}")
    h.wait(lambda: h.report()["live"] == "Draft saved as version 2.", "#report-live to announce the save")

    # Someone saves meanwhile: this page's save is refused (409), the card shows theirs and keeps mine.
    h.find("button#report-edit").click()
    h.wait(lambda: h.report()["shown"]["report-editor"], "form#report-editor to open again")
    other = h.api("PUT", f"/api/analyses/{analysis_id}/report", {"text": theirs, "baseVersion": 2})
    h.require(other["status"] == 200 and other["json"]["version"] == 3, f"the concurrent PUT answered {other}")
    h.js("document.querySelector('#report-editor-text').value = ''")
    h.append_to_editor(mine)
    with h.allow(rf"^{re.escape(h.base)}/api/analyses/{analysis_id}/report - Failed to load resource: the server responded with a status of 409 \(Conflict\)$",
                 "the deliberate stale save (baseVersion 2 after version 3 was written)"):
        h.find("button#report-save").click()
        r = h.wait(lambda: (lambda r: r["version"] == "3" and r["error"] and r)(h.report()), "the card to reload version 3 after the 409")
    h.expect("changed meanwhile" in r["error"] and "version 3" in r["error"], f"#report-error should say the report changed meanwhile: {r['error']!r}")
    h.expect(r["paragraphs"] == [theirs], f"after the conflict the card should show the version saved meanwhile: {r['paragraphs']}")
    h.expect(r["shown"]["report-editor"] and r["editorValue"] == mine, f"the editor should keep my text after the conflict: {r['editorValue']!r}")
    h.expect(h.active_id() == "report-editor-text", f"after the conflict focus should be in the editor; it is on {h.active_id()!r}")
    h.screenshot("conflict")
    h.find("button#report-save").click()
    r = h.wait_report("draft", 4)
    h.expect(r["paragraphs"] == [mine] and not r["error"], f"saving again should store my text as version 4: {r}")

    # Sign: a confirmation first; Cancel signs nothing.
    h.find("button#report-sign").click()
    h.wait(lambda: h.dialog_open("dialog#report-sign-dialog"), "dialog#report-sign-dialog to open")
    text = h.find("#report-sign-text").text
    h.expect("version 4" in text and h.clinician in text, f"the sign dialog should name the version and the signer: {text!r}")
    h.screenshot("sign-dialog")
    h.find("button#report-sign-cancel").click()
    h.wait(lambda: not h.dialog_open("dialog#report-sign-dialog"), "the sign dialog to close on Cancel")
    h.expect(h.api_report(analysis_id)["status"] == "draft", "Cancel in the sign dialog signed the report")
    h.expect(h.active_id() == "report-sign", f"Cancel should return focus to Sign; it is on {h.active_id()!r}")
    h.find("button#report-sign").click()
    h.confirm_signing("Sign this report?")
    r = h.wait_report("signed", 5)
    h.expect(re.fullmatch(rf"Signed by {re.escape(h.clinician)} on .*\d.*", r["badge"] or ""), f"#report-status after signing: {r['badge']!r}")
    h.expect(r["paragraphs"] == [mine], f"the signed text should be version 4's: {r['paragraphs']}")
    h.expect(not r["shown"]["report-edit"] and not r["shown"]["report-sign"] and r["shown"]["report-amend"],
             f"a signed report offers Amend only: {r['shown']}")
    h.expect(h.active_id() == "report-amend", f"after signing, focus should be on Amend; it is on {h.active_id()!r}")
    h.wait(lambda: h.report()["live"] == "Report signed (version 5).", "#report-live to announce the signature")

    # Amend: the editor says it is an amendment; signing it asks again.
    h.find("button#report-amend").click()
    h.wait(lambda: h.report()["shown"]["report-editor"], "the amendment editor to open")
    r = h.report()
    h.expect(r["editorValue"] == mine and r["save"] == "Sign amendment…" and r["editorLabel"] == "Amended report text",
             f"the amendment editor: value {r['editorValue']!r}, button {r['save']!r}, label {r['editorLabel']!r}")
    h.append_to_editor("\n\n" + amendment)
    h.find("button#report-save").click()
    h.confirm_signing("Sign this amendment?")
    r = h.wait_report("signed", 6)
    h.expect(re.fullmatch(rf"Amended: signed by {re.escape(h.clinician)} on .*\d.*", r["badge"] or ""), f"#report-status after the amendment: {r['badge']!r}")
    h.expect(r["paragraphs"] == [mine, amendment], f"the amended text: {r['paragraphs']}")

    # Every version, as the server has them.
    h.find("details#report-history summary").click()
    h.wait(lambda: h.js("return document.querySelector('details#report-history').open"), "the version history to open")
    api = h.api_report(analysis_id)
    shown = h.report()["versions"]
    want = [(str(v["number"]), v["status"]) for v in api["versions"]]
    h.expect(want == [(str(n), s) for n, s in [(1, "draft"), (2, "draft"), (3, "draft"), (4, "draft"), (5, "signed"), (6, "signed")]],
             f"the API should hold six versions: {want}")
    h.expect([(v["number"], v["status"]) for v in shown] == want, f"the history should list {want}; it lists {[(v['number'], v['status']) for v in shown]}")
    statuses = [v["cells"][1] for v in shown]
    h.expect(statuses == ["Draft"] * 4 + ["Signed", "Amendment (signed)"], f"history status column: {statuses}")
    by = [v["cells"][2] for v in shown]
    h.expect(by == ["Template (no LLM is configured)"] + [h.clinician] * 5, f"history 'Author or source' column: {by}")
    for v, a in zip(shown, api["versions"]):
        h.expect(v["paragraphs"] == paragraphs(a["text"]), f"history: version {v['number']} text {v['paragraphs']} != API {paragraphs(a['text'])}")
        h.expect(re.search(r"\d", v["cells"][3]), f"history: version {v['number']} has no date: {v['cells']}")
    h.screenshot("amended")

    # It stays so: a reload, and the printed report.
    h.driver.refresh()
    h.wait_screen("analysis")
    r = h.report()
    h.expect(r["status"] == "signed" and r["version"] == "6" and r["paragraphs"] == [mine, amendment],
             f"after a reload the card should show the amendment: {r}")
    printed = open_printed_report(h, analysis_id)
    h.expect(printed["paragraphs"] == [mine, amendment], f"the printed report should show the amended text: {printed['paragraphs']}")
    h.expect(printed["signedBy"] == h.clinician and printed["version"] == "6 (amended)" and not printed["unsigned"],
             f"the printed signature should name {h.clinician!r}, version '6 (amended)': {printed}")
    h.screenshot("printed")


def scenario_report_leave(h):
    """Text typed into the report editor is not lost by leaving the page. A navigation link, Back and
    Sign out first ask, in a dialog whose safe choice (Stay) has focus; staying keeps the address and the
    text, leaving discards the text and the stored report is unchanged. An editor opened and left
    unchanged asks nothing."""
    h.start_on_new_analysis()
    patient = new_patient("P-LEAVE")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    analysis_id = h.upload(patient)
    h.wait_report("draft", 1)
    here = h.path()
    leave_open = lambda: h.dialog_open("dialog#leave-dialog")

    def open_editor():
        h.find("button#report-edit").click()
        h.wait(lambda: h.report()["shown"]["report-editor"], "form#report-editor to open")

    def ask_and_stay(how):
        h.wait(leave_open, f"dialog#leave-dialog to open on {how} with unsaved text")
        h.expect(h.find("#leave-title").text == "Leave without saving?", f"leave dialog title: {h.find('#leave-title').text!r}")
        h.expect("not saved" in h.find("#leave-text").text, f"the leave dialog should say what is unsaved: {h.find('#leave-text').text!r}")
        h.expect(h.active_id() == "leave-stay",
                 f"the leave dialog should focus Stay first (a stray Enter must not discard); focus is on {h.active_id()!r}")
        if how == "a navigation link":
            h.screenshot("asked")
        h.find("button#leave-stay").click()
        h.wait(lambda: not leave_open(), "the leave dialog to close on Stay")
        h.wait(lambda: h.path() == here, f"the address to stay {here} after {how}")
        r = h.report()
        h.expect(h.screen() == "analysis" and r["shown"]["report-editor"] and typed in (r["editorValue"] or ""),
                 f"after Stay on {how} the editor should still hold the typed text: {r}")

    # Opened, nothing changed: leaving asks nothing.
    open_editor()
    h.nav("history", "history")
    h.expect(not leave_open(), "leaving an unchanged editor opened the leave dialog")
    h.driver.back()
    h.wait_screen("analysis")
    h.wait_report("draft", 1)

    open_editor()
    typed = f"Words not saved yet, ref {uuid.uuid4().hex[:8]}."
    h.sensitive(typed)
    h.append_to_editor("\n\n" + typed)
    h.find('nav#main-nav a[data-nav="history"]').click()
    ask_and_stay("a navigation link")
    h.driver.back()
    ask_and_stay("Back")
    h.find("button#signout").click()
    ask_and_stay("Sign out")

    # Leave: the text is discarded, nothing was saved.
    h.find('nav#main-nav a[data-nav="history"]').click()
    h.wait(leave_open, "dialog#leave-dialog to open once more")
    h.find("button#leave-discard").click()
    h.wait_screen("history")
    stored = h.api_report(analysis_id)
    h.expect(stored["version"] == 1 and typed not in (stored.get("text") or ""),
             f"leaving must not save anything: version {stored['version']}")
    h.harvest()
