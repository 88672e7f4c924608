"""The harness the scenarios get as `h`: the browser (harness_browser.Browser) plus the dashboard's
steps: signing in and out, the analysis form and screen, history, the Report card, API calls."""

import json
import re
import urllib.parse

from harness_browser import Browser
from harness_common import ANALYSIS_TIMEOUT, DRAFT_TIMEOUT, Failure, Keys, Select
from harness_page import CONTRAST_JS, REPORT_JS


class Harness(Browser):
    """Browser plus the steps of the dashboard that several scenarios take."""

    # ------------------------------------------------------------ dashboard steps
    def sensitive(self, *values):
        for v in values:
            print("MEDISCOPE-SENSITIVE: " + json.dumps(v))

    def sign_in(self, username, password, expect_screens=("new", "history", "users", "audit"), display_name=None):
        """Signs in through the form; returns the screen it lands on."""
        if not self.exists("form#signin-form"):
            self.go("/signin")
        self.wait_screen("signin")
        self.type_into("input#signin-username", username)
        self.type_into("input#signin-password", password)
        self.find("button#signin-submit").click()
        def landed():
            s = self.main_state()
            if isinstance(s, dict) and s["screen"] in expect_screens and s["ready"] == "true":
                return s["screen"]
            err = self.finds("p#signin-error")
            if err and err[0].text.strip():
                raise Failure(f"sign-in as {username!r} failed: p#signin-error says {err[0].text.strip()!r}")
            return None
        screen = self.wait(landed, f"the first screen after signing in as {username} (one of {expect_screens})")
        self.require(self.exists("nav#main-nav"), "nav#main-nav missing after signing in")
        whoami = self.finds("span#whoami")
        shown = f"{whoami[0].text} {whoami[0].get_attribute('title') or ''}" if whoami else ""
        self.expect(username in shown or (display_name and display_name in shown),
                    f"span#whoami should name {username!r}: its text and title say {shown!r}")
        return screen

    def nav(self, name, screen):
        link = self.find(f'nav#main-nav a[data-nav="{name}"]')
        link.click()
        self.wait_screen(screen)
        self.harvest()

    def sign_out(self):
        self.find("button#signout").click()
        self.wait_screen("signin")
        self.expect(not self.exists("nav#main-nav") or not self.find("nav#main-nav").is_displayed(),
                    "the navigation is still shown after signing out")
        self.expect(not self.exists("span#whoami") or not self.find("span#whoami").text.strip(),
                    "span#whoami still names a user after signing out")
        self.harvest()

    def check_contrast(self, where):
        low = self.js(CONTRAST_JS)
        print(f"{where}: {len(low)} text runs below the AA contrast ratio")
        for d in low:
            self.fail_soft(f"{where}: contrast below WCAG AA: {d}")

    def start_on_new_analysis(self):
        """A fresh browser, signed in as the clinician, on the new-analysis screen."""
        self.start()
        if self.sign_in(self.clinician, self.password) != "new":
            self.nav("new", "new")

    def fill_analysis_form(self, patient, scan=None, pick_file=True):
        """patient: dict with id, name, age, sex, modality, body_part, note. Waits for the preview.
        pick_file=False: the scan is already chosen (e.g. dropped)."""
        self.wait_screen("new")
        if pick_file:
            self.find("input#scan-file").send_keys(scan or self.scan)
        self.type_into("input#patient-id", patient["id"])
        self.type_into("input#patient-name", patient["name"])
        self.type_into("input#patient-age", str(patient["age"]))
        Select(self.find("select#patient-sex")).select_by_value(patient["sex"])
        Select(self.find("select#modality")).select_by_value(patient["modality"])
        self.type_into("input#body-part", patient["body_part"])
        self.type_into("textarea#note", patient["note"])
        self.wait_images("img#scan-preview")

    def wait_for_analysis(self, description="the analysis screen after uploading"):
        def done():
            m = re.fullmatch(r"/analyses/([^/]+)", self.path())
            s = self.main_state()
            if m and m.group(1) != "new" and isinstance(s, dict) and s["screen"] == "analysis" and s["ready"] == "true":
                return m.group(1)
            st = self.finds("p#upload-status")
            text = st[0].text.strip() if st else ""
            if self.path() == "/analyses/new" and re.search(r"error|fail|could not|cannot|refused|denied|invalid|too many|unavailable", text, re.I):
                raise Failure(f"the upload failed: p#upload-status says {text!r}")
            return None
        return self.wait(done, description, ANALYSIS_TIMEOUT, interval=0.25)

    def upload(self, patient, scan=None):
        self.fill_analysis_form(patient, scan)
        self.find("button#analyse-submit").click()
        return self.wait_for_analysis()

    def analysis_facts(self):
        """What the analysis screen shows, per result."""
        return self.js("""
            const txt = (el) => el ? el.innerText.trim() : null;
            const sec = document.querySelector('section#analysis');
            return {
              id: sec ? sec.dataset.analysisId : null,
              results: [...document.querySelectorAll('article.result')].map(a => ({
                id: a.dataset.resultId || null,
                title: txt(a.querySelector('h3')),
                prediction: txt(a.querySelector('.prediction')),
                confidence: txt(a.querySelector('.confidence')),
                heatmaps: a.querySelectorAll('img.heatmap').length,
                probs: [...a.querySelectorAll('ul.probabilities > li.prob-row')].map(li =>
                  [txt(li.querySelector('.prob-label')), txt(li.querySelector('.prob-value'))]),
                opacity: !!a.querySelector('input.opacity[type="range"]'),
                toggle: !!a.querySelector('button.layout-toggle'),
              })),
              timings: document.querySelectorAll('table#timings tr').length,
              timingsText: txt(document.querySelector('table#timings')),
              notice: txt(document.querySelector('p#decision-notice')),
              report: (document.querySelector('a#report-link') || {}).href || null,
              patient: Object.fromEntries(['patient-name', 'patient-id', 'patient-note', 'body-part'].map(k =>
                [k, txt(document.querySelector('#patient-block #' + k))])),
            };""")

    def check_analysis_screen(self, patient, analysis_id):
        """Asserts what the analysis screen must show; returns its facts. An out-of-scope analysis (issue 22)
        must lead with its warning; its numbers are then opened from behind it and checked the same way."""
        self.wait_screen("analysis")
        if self.exists("details#out-of-scope-results"):
            self.expect(self.exists("section#input-check-warning") and self.find("section#input-check-warning").is_displayed(),
                        "an out-of-scope analysis hides its numbers without showing the warning")
            if not self.js("return document.querySelector('details#out-of-scope-results').open"):
                self.find("details#out-of-scope-results > summary").click()
        self.wait_images("img#scan-image")
        self.wait_images("img.heatmap")
        f = self.analysis_facts()
        self.require(f["id"] == analysis_id, f"section#analysis[data-analysis-id] is {f['id']!r}, the URL says {analysis_id!r}")
        self.require(len(f["results"]) >= 1, "no article.result on the analysis screen")
        for r in f["results"]:
            label = f"result {r['id']!r} ({r['title']!r})"
            self.expect(r["id"], f"{label}: article.result has no data-result-id")
            self.expect(r["title"], f"{label}: no h3 title")
            self.expect(r["heatmaps"] >= 1, f"{label}: no img.heatmap")
            self.expect(r["prediction"], f"{label}: .prediction is missing or empty")
            self.expect(r["confidence"] and re.search(r"\d", r["confidence"]),
                        f"{label}: .confidence should show a number; it is {r['confidence']!r}")
            self.expect(len(r["probs"]) >= 2, f"{label}: {len(r['probs'])} li.prob-row, want >= 2")
            for lab, val in r["probs"]:
                self.expect(lab, f"{label}: a li.prob-row has no .prob-label text")
                self.expect(val and re.fullmatch(r"\d{1,3}(\.\d+)?\s?%", val),
                            f"{label}: .prob-value {val!r} (label {lab!r}) is not a percentage like '97.3 %'")
            self.expect(r["opacity"], f"{label}: no input.opacity[type=range]")
            self.expect(r["toggle"], f"{label}: no button.layout-toggle")
        self.expect(f["notice"], "p#decision-notice (decision-support notice) is missing or empty")
        self.expect(f["timings"] >= 1 and re.search(r"\d", f["timingsText"] or ""),
                    f"table#timings should list timings; it shows {f['timingsText']!r}")
        self.expect(f["report"] and urllib.parse.urlsplit(f["report"]).path == f"/analyses/{analysis_id}/report",
                    f"a#report-link should point at /analyses/{analysis_id}/report; href is {f['report']!r}")
        self.check_exports(analysis_id, [r["id"] for r in f["results"]])
        if patient:
            p = f["patient"]
            for key, want in (("patient-name", patient["name"]), ("patient-id", patient["id"]),
                              ("patient-note", patient["note"]), ("body-part", patient["body_part"])):
                self.expect(p[key] is not None and want in p[key],
                            f"#patient-block #{key} should show {want!r}; it shows {p[key]!r}")
        return f

    def check_exports(self, analysis_id, result_ids):
        """The export menu offers the SR, one Secondary Capture per result and the FHIR report, and each link
        downloads what it says with the page's own session (a DICOM file: 'DICM' at byte 128)."""
        links = self.js("""return Object.fromEntries([...document.querySelectorAll('details#export-menu a')]
                             .map(a => [a.id, new URL(a.href).pathname]))""")
        base = f"/api/analyses/{analysis_id}"
        want = {"export-sr": f"{base}/dicom/sr", "export-fhir": f"{base}/fhir",
                **{f"export-sc-{r}": f"{base}/dicom/sc/{r}" for r in result_ids}}
        self.expect(links == want, f"the export menu links {links}, want {want}")
        got = self.driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            Promise.all(arguments[0].map(async (path) => {
              const r = await fetch(path, { credentials: 'same-origin' });
              const bytes = new Uint8Array(await r.arrayBuffer());
              return [path, r.status, r.headers.get('content-type'), String.fromCharCode(...bytes.slice(128, 132)), bytes[0]];
            })).then(done, (e) => done(String(e)));""", sorted(want.values()))
        self.require(isinstance(got, list), f"the export downloads failed: {got}")
        for path, status, kind, magic, first in got:
            if path.endswith("/fhir"):
                self.expect(status == 200 and (kind or "").startswith("application/fhir+json") and first == ord("{"),
                            f"{path}: {status} {kind}, want 200 application/fhir+json")
            else:
                self.expect(status == 200 and kind == "application/dicom" and magic == "DICM",
                            f"{path}: {status} {kind} {magic!r}, want 200 application/dicom with DICM at 128")

    def url_leaks(self, *values):
        """Which of values appear in the current URL (raw, or percent- or plus-encoded)."""
        url = self.driver.current_url
        decoded = urllib.parse.unquote_plus(url)
        return [v for v in values if v and (v in url or v in decoded or urllib.parse.quote(v) in url or urllib.parse.quote_plus(v) in url)]

    def history_search(self, patient_id):
        box = self.find("input#history-patient-id")
        box.clear()
        box.send_keys(patient_id)
        box.send_keys(Keys.ENTER)

    def history_links(self):
        return self.js("""return [...document.querySelectorAll('table#history-table tbody tr a.analysis-link')]
                           .map(a => new URL(a.href).pathname)""")

    # ------------------------------------------------------------ the report card
    def report(self):
        """What the Report card (section#report) shows: state, text, source, buttons shown, versions."""
        return self.js(REPORT_JS)

    def wait_report(self, status, version=None, timeout=DRAFT_TIMEOUT):
        """Waits for section#report[data-status=status] (and data-version=version); returns report()."""
        want = f'section#report[data-status="{status}"]' + (f'[data-version="{version}"]' if version is not None else "")
        def ready():
            r = self.report()
            return r and r["status"] == status and (version is None or r["version"] == str(version)) and r
        try:
            return self.wait(ready, want, timeout, interval=0.2)
        except Failure as error:
            raise Failure(f"{error}; the report card shows {self.report()}")

    def api(self, method, path, body=None):
        """A same-origin JSON request from the page with the session cookie and the CSRF header, as the
        dashboard sends it (another tab, or another clinician, changing the report behind this page)."""
        return self.driver.execute_async_script("""
            const [method, path, body] = arguments, done = arguments[arguments.length - 1];
            const m = document.cookie.match(/(?:^|;\\s*)__Host-mediscope_csrf=([^;]+)/)
                || document.cookie.match(/(?:^|;\\s*)mediscope_csrf=([^;]+)/);
            const headers = { Accept: 'application/json', 'X-CSRF-Token': m ? decodeURIComponent(m[1]) : '' };
            if (body !== null) headers['Content-Type'] = 'application/json';
            fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store',
                          body: body === null ? undefined : JSON.stringify(body) })
              .then(async r => done({ status: r.status, json: await r.json().catch(() => null) }),
                    e => done({ status: 0, json: { detail: String(e) } }));""", method, path, body)

    def api_report(self, analysis_id):
        r = self.api("GET", f"/api/analyses/{analysis_id}")
        self.require(r["status"] == 200, f"GET /api/analyses/{analysis_id} answered {r['status']}: {r['json']}")
        return r["json"]["report"]

    def active_id(self):
        return self.js("const a = document.activeElement; return a ? (a.id || a.tagName.toLowerCase()) : null")

    def dialog_open(self, css):
        return self.js("const d = document.querySelector(arguments[0]); return !!d && d.open", css)

    def append_to_editor(self, text):
        """Types text at the end of textarea#report-editor-text (as a person would: keys, newlines as Enter)."""
        box = self.find("textarea#report-editor-text")
        box.click()
        box.send_keys(Keys.CONTROL, Keys.END)
        box.send_keys(text)
        return box.get_attribute("value")

    def confirm_signing(self, title):
        """The sign dialog is open with `title`, focus on its Cancel; confirms it."""
        self.wait(lambda: self.dialog_open("dialog#report-sign-dialog"), "dialog#report-sign-dialog to open")
        shown = self.find("#report-sign-title").text
        self.expect(shown == title, f"the sign dialog's title is {shown!r}, want {title!r}")
        self.expect(self.active_id() == "report-sign-cancel",
                    f"the sign dialog should focus its Cancel button first (a stray Enter must not sign); focus is on {self.active_id()!r}")
        self.find("button#report-sign-confirm").click()
        self.wait(lambda: not self.dialog_open("dialog#report-sign-dialog"), "the sign dialog to close after signing")
