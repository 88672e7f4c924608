"""The Studies view (issue 24 part 4): studies sent by DICOMweb STOW-RS with the clinician's API token show
with their patient, each series' state, progress and summary, and keep themselves up to date without a
reload until every slice is analysed; one study lists each slice with its state, why it was not analysed,
its findings and its analysis one click away.

Needs a stack of its own (BrowserTests starts one): its list starts empty, and its
dicom.max_instances_per_series is MEDISCOPE_SERIES_CAP, so a series of more slices has skipped ones."""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid

from harness_common import ANALYSIS_TIMEOUT, Keys, env

MR_SMALL = "/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm"
PAGE = 10            # studies.js's page size: PAGE + 1 studies make a second page
FILLER_SLICES = 3    # per study before the one under test: analyses enough ahead of its own for both views to see it wait


def new_uid():
    """A UID from a UUID (PS3.5 B.2): unique per run, so the stack's other studies never match."""
    return f"2.25.{uuid.uuid4().int}"


class Sender:
    """Makes DICOM instances (copies of pydicom's MR_small.dcm changed by DCMTK's dcmodify) and sends them by
    STOW-RS with a clinician's API token, as a PACS or a script would; reads the Studies API the same way."""

    def __init__(self, base, token):
        self.base, self.token = base, token
        self.folder = tempfile.mkdtemp(prefix="mediscope-studies-")
        self.made = 0

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def instance(self, tags):
        self.made += 1
        path = os.path.join(self.folder, f"{self.made}.dcm")
        shutil.copyfile(MR_SMALL, path)
        args = [a for tag, value in sorted(tags.items()) for a in ("-i", f"{tag}={value}")]
        run = subprocess.run(["/usr/bin/dcmodify", "-nb", *args, path], capture_output=True, text=True, timeout=60)
        if run.returncode != 0:
            raise RuntimeError(f"dcmodify failed: {run.stderr.strip()}")
        return path

    def series(self, count, patient_id, patient_name, study_uid, description, series_number=1):
        """`count` slices (instance numbers 1...count) of one new series; returns (series UID, paths)."""
        series_uid = new_uid()
        return series_uid, [self.instance({
            "(0010,0020)": patient_id, "(0010,0010)": patient_name, "(0008,1030)": description,
            "(0020,000D)": study_uid, "(0020,000E)": series_uid, "(0020,0011)": str(series_number),
            "(0020,0013)": str(n), "(0008,0018)": new_uid()}) for n in range(1, count + 1)]

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def stow(self, files):
        """POST /dicom-web/studies, multipart/related; type="application/dicom"; returns (status, SOP UIDs stored)."""
        boundary = f"mediscope-studies-{uuid.uuid4().hex}"
        body = b""
        for path in files:
            with open(path, "rb") as f:
                body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + f.read() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        status, answer = self.request("POST", "/dicom-web/studies", body, {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        stored = [item["00081155"]["Value"][0] for item in ((answer or {}).get("00081199") or {}).get("Value", [])]
        return status, stored

    def study(self, uid):
        status, body = self.request("GET", f"/api/studies/{uid}")
        return body if status == 200 else None


# Runs in the page: records each state and progress the main series shows (the list and the study view
# replace their nodes as they refresh) and every fetch the page makes. Survives navigation inside the app,
# not a reload: a reload would lose it.
RECORDER = r"""
const series = arguments[0];
window.__seriesStates = [];
window.__fetches = [];
const pageFetch = window.fetch;
window.fetch = function (input, init) {
  window.__fetches.push({ url: String(input instanceof Request ? input.url : input), t: performance.now() });
  return pageFetch.apply(this, arguments);
};
let last = null;
const record = () => {
  const el = document.querySelector(`div.series[data-series-uid="${series}"]`);
  if (!el) return;
  const screen = document.getElementById('main').dataset.screen;
  const now = `${el.dataset.state}|${(el.querySelector('.progress-text') || {}).textContent || ''}`;
  if (`${screen}|${now}` !== last) { last = `${screen}|${now}`; window.__seriesStates.push({ screen, state: now }); }
};
new MutationObserver(record).observe(document.getElementById('main'), { subtree: true, childList: true, attributes: true, characterData: true });
record();
window.__listRenders = 0;   // how often the list replaced its cards (a refresh that changed something)
const list = document.getElementById('studies-list');
if (list) new MutationObserver(() => { window.__listRenders++; }).observe(list, { childList: true });
"""


def list_fetches(h):
    """How many times the page asked for a page of the list (GET /api/studies?...) since RECORDER ran."""
    return h.js("return (window.__fetches || []).filter(f => new URL(f.url, location.href).pathname === '/api/studies').length")


def card(h, uid):
    """What the list's card of study `uid` shows (None while it is not on the page)."""
    return h.js("""
        const c = [...document.querySelectorAll('article.study')].find(a => a.dataset.studyUid === arguments[0]);
        if (!c) return null;
        const s = c.querySelector('div.series');
        return {
          heading: c.querySelector('h2').textContent, text: c.innerText,
          markup: c.querySelectorAll('img, b, script').length,
          bdi: [...c.querySelectorAll('h2 bdi')].map(b => b.textContent),
          open: new URL(c.querySelector('a.study-link').href).pathname,
          state: s && s.dataset.state, progress: s && s.querySelector('.progress-text').textContent,
          counts: [...c.querySelectorAll('.result-counts li')].map(li => ({ result: li.dataset.result,
            predictions: Object.fromEntries([...li.querySelectorAll('.prediction-count')].map(p => [p.dataset.label, Number(p.dataset.count)])),
            texts: Object.fromEntries([...li.querySelectorAll('.prediction-count')].map(p => [p.dataset.label, p.textContent])) })),
          outOfScope: (c.querySelector('.series-scope') || { dataset: {} }).dataset.count || null,
          highest: [...c.querySelectorAll('p.highest')].map(p => ({ result: p.dataset.result, text: p.textContent,
            href: new URL(p.querySelector('a.highest-link').href).pathname })),
        };""", uid)


def listed(h):
    return h.js("return [...document.querySelectorAll('ol#studies-list article.study')].map(a => a.dataset.studyUid)")


def expect_summary(h, where, shown, summary, cap):
    """The summary shown (counts by prediction, out of scope, the highest slice) is the API's."""
    want = [{"result": r["result"], "predictions": r["predictions"]} for r in summary["results"]]
    got = [{"result": r["result"], "predictions": r["predictions"]} for r in shown["counts"]]
    h.expect(got == want, f"{where}: counts by prediction {got}, the API says {want}")
    # Labels read as the model's manifest names them ("No tumour"), not as raw labels ("notumor").
    for r, api in zip(shown["counts"], summary["results"]):
        for label, text in r.get("texts", {}).items():
            title = api.get("labelTitles", {}).get(label)
            h.expect(title and text.startswith(title), f"{where}: {label} is shown as {text!r}, its title is {title!r}")
    for r in shown["counts"]:
        h.expect(sum(r["predictions"].values()) == cap, f"{where}: the counts of {r['result']} add up to "
                                                         f"{sum(r['predictions'].values())}, not the {cap} analysed slices")
    want_scope = str(summary["outOfScope"]) if summary["outOfScope"] else None
    h.expect(shown["outOfScope"] == want_scope, f"{where}: {shown['outOfScope']!r} slices shown out of scope, the API says {want_scope!r}")
    want_highest = [(x["result"], f"/analyses/{x['analysisId']}") for x in summary["highest"]]
    h.expect([(x["result"], x["href"]) for x in shown["highest"]] == want_highest and want_highest,
             f"{where}: the highest slices link to {shown['highest']}, the API says {want_highest}")


def scenario_studies(h):
    cap = int(env("MEDISCOPE_SERIES_CAP", "3"))
    slices = cap + 2
    tag = uuid.uuid4().hex[:6].upper()
    patient_id = f"P-ST-{tag}"
    # Markup where a PACS puts text: shown as text, never run (no "=" in a PN: it separates its groups).
    patient_name = f"Studytest^<b>Ada</b> {tag.title()}"
    description = f"<img src=x onerror=window.__studyXSS=1> Head MR {tag}"
    fillers = [f"P-STF-{tag}-{i:02}" for i in range(1, PAGE + 1)]
    h.sensitive(patient_id, patient_name, patient_name.replace("^", " "), description, *fillers)

    h.start()
    h.sign_in(h.clinician, h.password)
    h.nav("studies", "studies")
    empty = h.find("div#studies-empty")
    h.expect(empty.is_displayed() and "No studies received yet" in empty.text and "STOW-RS" in empty.text and "dicom.listen" in empty.text,
             f"an empty list should say no studies were received and how they arrive: {empty.text!r}")
    h.expect(not h.find("ol#studies-list").is_displayed(), "the empty list is shown beside the empty-state text")
    h.expect(h.find("section#studies").get_attribute("data-polling") == "false", "an empty list should not poll")
    h.check_contrast("studies (empty)")
    h.screenshot("empty")

    made = h.api("POST", "/api/tokens", {"name": "studies browser scenario"})
    h.require(made["status"] == 201, f"POST /api/tokens answered {made['status']}: {made['json']}")
    token = made["json"]["token"]
    h.sensitive(token)
    sender = Sender(h.base, token)
    try:
        # PAGE studies of FILLER_SLICES slices, then the study under test, newest: the list's first page is it
        # and PAGE - 1 of the others, the second page the oldest. Its slices wait behind theirs (analysis is
        # first in, first out), so the pages see them waiting for a while and have to refresh by themselves.
        filler_uids, filler_files = [], []
        for pid in fillers:
            filler_uids.append(new_uid())
            filler_files += sender.series(FILLER_SLICES, pid, f"Filler^{pid}", filler_uids[-1], "Filler MR")[1]
        status, stored = sender.stow(filler_files)
        h.require(status == 200 and len(stored) == len(filler_files),
                  f"STOW-RS of {PAGE} studies answered {status}, stored {len(stored)} of {len(filler_files)} instances")
        study_uid = new_uid()
        series_uid, files = sender.series(slices, patient_id, patient_name, study_uid, description, series_number=7)
        status, stored = sender.stow(files)
        h.require(status == 200 and len(stored) == slices,
                  f"STOW-RS of a series of {slices} answered {status}, stored {len(stored)} (past the cap is still stored)")

        h.js(RECORDER, series_uid)
        h.find("button#studies-refresh").click()
        h.wait(lambda: card(h, study_uid), "the study sent by STOW-RS to show after Refresh")
        c = card(h, study_uid)
        h.expect(patient_id in c["bdi"], f"the card's heading should show patient {patient_id!r} (isolated): {c['heading']!r}")
        h.expect("<b>Ada</b>" in c["text"] and "<img src=x" in c["text"] and c["markup"] == 0
                 and h.js("return window.__studyXSS === undefined"),
                 f"markup in the patient's name or the description should show as text: {c['text']!r}, {c['markup']} elements")
        h.expect(listed(h)[:1] == [study_uid] and len(listed(h)) == PAGE,
                 f"the first page should list {PAGE} studies, the newest first: {listed(h)}")
        h.expect(h.find("section#studies").get_attribute("data-polling") == "true",
                 f"the list should refresh by itself while slices wait for analysis (series state {c['state']!r})")
        h.screenshot("waiting")

        # The list asks again by itself, and a refresh that changes the cards keeps the keyboard focus where
        # it was; then, with the keyboard, into the study while its slices still wait.
        h.wait(lambda: list_fetches(h) >= 2, "the list to refresh itself (a second GET /api/studies after Refresh)")
        open_id = f"open-{study_uid}"
        renders = h.js("document.getElementById(arguments[0]).focus(); return window.__listRenders", open_id)
        h.wait(lambda: h.js("return window.__listRenders") > renders, "the list to refresh its cards while the slices are analysed")
        h.expect(h.active_id() == open_id, f"a refresh moved the keyboard focus from #{open_id} to {h.active_id()!r}")
        poll_ms = int(h.find("section#studies").get_attribute("data-poll-ms") or 0)
        def press_enter():   # the list may re-render between finding the link and the key: find it again
            h.find(f'a.study-link[href="/studies/{study_uid}"]').send_keys(Keys.ENTER)
            return True
        h.wait(press_enter, "Enter on the study's Open study link")
        h.wait_screen("study")
        asked, left_at = list_fetches(h), h.js("return performance.now()")

        # The study view refreshes itself until the series is done.
        def series_done():
            el = h.finds(f'div.series[data-series-uid="{series_uid}"][data-state="done"]')
            return el and h.find("section#study").get_attribute("data-polling") == "false"
        h.wait(series_done, f"the series to show done and the study view to stop refreshing", ANALYSIS_TIMEOUT)
        states = h.js("return window.__seriesStates || null")
        h.require(states is not None, "the page reloaded: the Studies view should refresh in place")
        print(f"series states seen: {states}")
        h.expect(states[-1]["state"].startswith("done|") and all(any(s["screen"] == screen and not s["state"].startswith("done|")
                                                                   for s in states) for screen in ("studies", "study")),
                 f"the list and the study view should each show the series waiting, then done, without a reload: {states}")
        api = sender.study(study_uid)
        h.require(api and len(api["series"]) == 1, f"GET /api/studies/{study_uid}: {api}")
        want = api["series"][0]
        progress = h.find(f'div.series[data-series-uid="{series_uid}"] .progress-text').text
        h.expect(progress.startswith(f"{cap} of {cap} analysed") and f"{slices - cap} not analysed" in progress,
                 f"the series should say {cap} of {cap} analysed and {slices - cap} not: {progress!r}")
        facts = h.find("dl#study-facts").text
        h.expect(patient_id in facts and "<b>Ada</b>" in facts and all(part in facts for part in ("Aug", "26", "2004")),
                 f"the study's facts should show the patient and the study date (20040826): {facts!r}")
        rows = h.js("""return [...document.querySelectorAll('table.slices tbody tr')].map(tr => ({
            sop: tr.dataset.sopUid, state: tr.dataset.state, number: tr.cells[0].textContent,
            badge: tr.cells[1].textContent, findings: tr.cells[2].innerText, notes: tr.cells[3].innerText,
            link: tr.querySelector('a.analysis-link') ? new URL(tr.querySelector('a.analysis-link').href).pathname : null }))""")
        h.expect([r["number"] for r in rows] == [str(n) for n in range(1, slices + 1)],
                 f"the study should list slices 1 to {slices}: {[r['number'] for r in rows]}")
        for row, item in zip(rows, want["items"]):
            where = f"slice {row['number']}"
            h.expect(row["sop"] == item["sopInstanceUID"] and row["state"] == item["state"], f"{where}: {row} but the API says {item}")
            if item["state"] == "done":
                h.expect(row["link"] == f"/analyses/{item['analysisId']}", f"{where}: links to {row['link']!r}, not its analysis {item['analysisId']}")
                h.expect(all(f["title"] in row["findings"] for f in item["findings"]) and item["findings"],
                         f"{where}: its findings {row['findings']!r} should name each result of {item['findings']}")
            else:
                h.expect(row["link"] is None, f"{where} ({item['state']}) should have no analysis link")
                h.expect(item.get("reason") and item["reason"] in row["notes"] and row["badge"] == "Skipped",
                         f"{where}: a skipped slice should say why ({item.get('reason')!r}); it shows {row['badge']!r} {row['notes']!r}")
        h.expect(sum(r["state"] == "skipped" for r in rows) == slices - cap and any(f"cap of {cap}" in r["notes"] for r in rows),
                 f"{slices - cap} slices past the cap of {cap} should say so: {[(r['state'], r['notes']) for r in rows]}")
        shown = card_like_summary(h, series_uid)
        expect_summary(h, "the study view", shown, want["summary"], cap)
        h.check_contrast("study")
        h.screenshot("study")

        # A slice's analysis is one click away, and Back returns to the study.
        first = next(r for r in rows if r["link"])
        h.find(f'table.slices a.analysis-link[href="{first["link"]}"]').click()
        analysis_id = first["link"].rsplit("/", 1)[1]
        h.check_analysis_screen(None, analysis_id)
        shown_id = h.js("return document.querySelector('#patient-block #patient-id').innerText.trim()")
        h.expect(shown_id == patient_id, f"the slice's analysis shows patient {shown_id!r}, the file says {patient_id!r}")
        h.driver.back()
        h.wait_screen("study")
        h.expect(h.find("section#study").get_attribute("data-study-uid") == study_uid, "Back did not return to the study")

        # The list stopped asking when it was left (its next look was due poll_ms after its last one).
        elapsed = h.js("return performance.now()") - left_at
        later = list_fetches(h) - asked
        h.expect(later == 0, f"the list asked {later} more times after it was left")
        if elapsed < poll_ms + 1000:
            h.log_notes.append(f"the list was left only {elapsed:.0f} ms ago (its next look was due after {poll_ms} ms)")

        # The list again: done, not refreshing, and the highest slice's analysis one click away.
        h.find("a#study-back").click()
        h.wait_screen("studies")
        h.wait(lambda: (card(h, study_uid) or {}).get("state") == "done", "the list to show the series done")
        h.wait(lambda: h.find("section#studies").get_attribute("data-polling") == "false",
               "the list to stop refreshing once every series is done")
        c = card(h, study_uid)
        h.expect(c["progress"].startswith(f"{cap} of {cap} analysed"), f"the card's progress: {c['progress']!r}")
        expect_summary(h, "the list", c, want["summary"], cap)
        h.screenshot("done")
        highest = want["summary"]["highest"][0]
        h.find(f'article.study[data-study-uid="{study_uid}"] p.highest[data-result="{highest["result"]}"] a.highest-link').click()
        h.check_analysis_screen(None, highest["analysisId"])
        h.expect(h.path() == f"/analyses/{highest['analysisId']}", f"the highest slice's link opened {h.path()}")
        h.driver.back()
        h.wait_screen("studies")

        # Paging with the server's next link: PAGE + 1 studies make two pages.
        first_page = listed(h)
        h.expect(len(first_page) == PAGE and not h.find("button#studies-next").get_property("disabled")
                 and h.find("button#studies-prev").get_property("disabled"),
                 f"page 1 should hold {PAGE} studies with Older enabled and Newer disabled: {len(first_page)}")
        h.find("button#studies-next").click()
        h.wait(lambda: "Page 2" in h.find("section#studies .page-info").text and listed(h) != first_page, "the second page")
        second_page = listed(h)
        h.expect(len(second_page) == 1 and second_page[0] in filler_uids and second_page[0] not in first_page,
                 f"page 2 should hold the one oldest study: {second_page}")
        h.expect(set(first_page + second_page) == set(filler_uids + [study_uid]), "the two pages should hold every study once")
        h.expect(h.find("button#studies-next").get_property("disabled") and not h.find("button#studies-prev").get_property("disabled"),
                 "the last page should have Older disabled and Newer enabled")
        h.screenshot("page-2")
        h.find("button#studies-prev").click()
        h.wait(lambda: "Page 1" in h.find("section#studies .page-info").text and listed(h) == first_page, "back to the first page")
    finally:
        sender.close()


def card_like_summary(h, series_uid):
    """The study view's summary of one series, in the shape card() gives."""
    return h.js("""
        const s = document.querySelector(`div.series[data-series-uid="${arguments[0]}"]`);
        return {
          counts: [...s.querySelectorAll('.result-counts li')].map(li => ({ result: li.dataset.result,
            predictions: Object.fromEntries([...li.querySelectorAll('.prediction-count')].map(p => [p.dataset.label, Number(p.dataset.count)])) })),
          outOfScope: (s.querySelector('.series-scope') || { dataset: {} }).dataset.count || null,
          highest: [...s.querySelectorAll('p.highest')].map(p => ({ result: p.dataset.result, text: p.textContent,
            href: new URL(p.querySelector('a.highest-link').href).pathname })),
        };""", series_uid)
