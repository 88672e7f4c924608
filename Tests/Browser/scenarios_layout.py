"""Scenarios of layout and access: a tablet viewport without horizontal scroll, the keyboard alone
(names, Tab order, focus through the report's dialogs), and the bytes a first visit downloads."""

import json
import os
import re
import time
import urllib.parse
import uuid

from harness_common import ANALYSIS_TIMEOUT, TABLET, ActionChains, Failure, Keys, WebDriverException, new_patient


def scenario_tablet_layout(h):
    h.start(TABLET)

    def check(where):
        sw, cw = h.no_horizontal_scroll()
        h.expect(sw <= cw, f"{where} at {TABLET[0]}x{TABLET[1]}: horizontal scroll (scrollWidth {sw} > clientWidth {cw})")
        if sw > cw:
            wide = h.js("""const cw = document.documentElement.clientWidth;
                return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > cw + 0.5)
                  .slice(0, 8).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '')
                  + ' right=' + Math.round(e.getBoundingClientRect().right))""")
            print(f"  elements past the right edge: {wide}")

    h.go("/signin")
    h.wait_screen("signin")
    check("sign-in")
    h.screenshot("signin")
    screen = h.sign_in(h.clinician, h.password)
    if screen != "new":
        h.nav("new", "new")
    patient = new_patient("P-TAB")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    h.fill_analysis_form(patient)
    check("new analysis")
    h.screenshot("new-analysis")
    h.find("button#analyse-submit").click()
    analysis_id = h.wait_for_analysis()
    h.check_analysis_screen(patient, analysis_id)
    check("analysis (overlay)")
    h.screenshot("analysis")
    toggle = h.find("button.layout-toggle")
    before = toggle.get_attribute("aria-pressed")
    toggle.click()
    h.wait(lambda: h.find("button.layout-toggle").get_attribute("aria-pressed") != before, "the layout toggle to flip")
    h.wait_images("img.heatmap")
    check("analysis (other layout)")
    h.screenshot("analysis-toggled")
    # The report card with its draft, an open editor and the version history open.
    h.wait_report("draft", 1)
    h.find("details#report-history summary").click()
    h.find("button#report-edit").click()
    h.wait(lambda: h.report()["shown"]["report-editor"], "form#report-editor to open")
    check("analysis (report editor and history)")
    h.screenshot("report")
    h.nav("history", "history")
    check("history")
    h.screenshot("history")
    h.harvest()


def scenario_keyboard(h):
    h.start()
    h.go("/signin")
    h.wait_screen("signin")

    def active():
        return h.js("const a = document.activeElement; return a ? (a.id || a.tagName.toLowerCase()) : null")

    def tab_to(element_id, limit=30):
        for _ in range(limit):
            if active() == element_id:
                return True
            ActionChains(h.driver).send_keys(Keys.TAB).perform()
        return active() == element_id

    # From the top of the page (whatever the screen focused on its own), as a keyboard user starts.
    h.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    h.require(tab_to("signin-username"), f"Tab never reached input#signin-username (focus is on {active()!r})")
    ActionChains(h.driver).send_keys(h.clinician).perform()
    ActionChains(h.driver).send_keys(Keys.TAB).perform()
    h.require(active() == "signin-password", f"Tab from the username should reach input#signin-password; focus is on {active()!r}")
    ActionChains(h.driver).send_keys(h.password).perform()
    ActionChains(h.driver).send_keys(Keys.ENTER).perform()
    screen = h.wait(lambda: (lambda s: s["screen"] if isinstance(s, dict) and s["screen"] in ("new", "history") and s["ready"] == "true" else None)(h.main_state()),
                    "a clinician screen after signing in with the keyboard only")
    h.harvest()
    if screen != "new":
        h.nav("new", "new")

    names_js = r"""
        const out = [];
        const text = (el) => (el.innerText || el.textContent || '').replace(/\s+/g, ' ').trim();
        for (const el of document.querySelectorAll('input, select, textarea, button, a[href]')) {
          if (el.tagName === 'INPUT' && el.type === 'hidden') continue;
          let name = '', how = '';
          const by = el.getAttribute('aria-labelledby');
          if (by) { name = by.split(/\s+/).map(id => { const r = document.getElementById(id); return r ? text(r) : ''; }).join(' ').trim(); how = 'aria-labelledby'; }
          if (!name && (el.getAttribute('aria-label') || '').trim()) { name = el.getAttribute('aria-label').trim(); how = 'aria-label'; }
          if (!name && el.labels && el.labels.length) { name = [...el.labels].map(text).join(' ').trim(); how = 'label'; }
          if (!name && (el.tagName === 'BUTTON' || el.tagName === 'A')) {
            name = text(el) || [...el.querySelectorAll('img[alt]')].map(i => i.alt.trim()).join(' ').trim(); how = 'text';
          }
          if (!name && el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) { name = (el.value || '').trim(); how = 'value'; }
          if (!name && (el.title || '').trim()) { name = el.title.trim(); how = 'title'; }
          out.push({ el, name, how, rendered: el.getClientRects().length > 0,
                     desc: el.outerHTML.slice(0, 160) });
        }
        return out;"""

    def check_names(where):
        items = h.js(names_js)
        h.expect(items, f"{where}: no interactive elements found")
        unnamed = []
        for item in items:
            if item["name"]:
                continue
            computed = ""
            if item["rendered"]:
                try:
                    computed = item["el"].accessible_name or ""   # Chrome's own accessible-name computation
                except WebDriverException:
                    computed = ""
            if not computed.strip():
                unnamed.append(item["desc"])
        print(f"{where}: {len(items)} interactive elements, {len(unnamed)} without an accessible name")
        for d in unnamed:
            h.fail_soft(f"{where}: no accessible name (label, aria-label or text): {d}")
        bad_imgs = h.js("""return [...document.images].filter(i => !(i.getAttribute('alt') || '').trim())
                           .map(i => i.outerHTML.slice(0, 160))""")
        for d in bad_imgs:
            h.fail_soft(f"{where}: img without a non-empty alt: {d}")

    check_names("new analysis (empty)")
    h.check_contrast("new analysis")

    # Keyboard reach: the file picker (input#scan-file or div#dropzone) and the submit button.
    h.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    seen = []
    for _ in range(60):
        ActionChains(h.driver).send_keys(Keys.TAB).perform()
        a = active()
        if seen and a == seen[0]:
            break
        seen.append(a)
    print(f"Tab order on the new-analysis screen: {seen}")
    h.expect("scan-file" in seen or "dropzone" in seen, "the scan file picker (input#scan-file or div#dropzone) is not reachable with Tab")
    h.expect("analyse-submit" in seen, "button#analyse-submit is not reachable with Tab")

    patient = new_patient("P-KEY")
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    h.fill_analysis_form(patient)
    check_names("new analysis (filled)")
    # Submit with Enter from a text field, as a keyboard user would.
    h.find("input#patient-id").send_keys(Keys.ENTER)
    try:
        analysis_id = h.wait(lambda: re.fullmatch(r"/analyses/(?!new$)[^/]+", h.path()) and h.path().split("/")[-1],
                             "Enter in input#patient-id to submit the analysis form", timeout=ANALYSIS_TIMEOUT)
    except Failure as error:
        h.fail_soft(str(error))
        h.find("button#analyse-submit").click()
        analysis_id = h.wait_for_analysis()
    h.check_analysis_screen(patient, analysis_id)
    check_names("analysis")
    h.check_contrast("analysis")
    h.screenshot("analysis")
    h.harvest()

    # The report with the keyboard alone: Edit, type, save; Sign, Escape, Sign, confirm. Focus follows.
    h.wait_report("draft", 1)
    check_names("analysis with the draft report")
    h.check_contrast("analysis with the draft report")
    keys = lambda *k: ActionChains(h.driver).send_keys(*k).perform()
    h.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    h.require(tab_to("report-edit", limit=80), f"Tab never reached button#report-edit (focus is on {active()!r})")
    keys(Keys.ENTER)
    h.wait(lambda: active() == "report-editor-text", "Enter on Edit to open the editor with focus in its textarea")
    line = f"Typed with the keyboard, ref {uuid.uuid4().hex[:8]}."
    h.sensitive(line)
    ActionChains(h.driver).key_down(Keys.CONTROL).send_keys(Keys.END).key_up(Keys.CONTROL).perform()
    keys(Keys.ENTER, Keys.ENTER, line)
    keys(Keys.TAB)
    h.expect(active() == "report-save", f"Tab from the report text should reach Save draft; focus is on {active()!r}")
    keys(Keys.ENTER)
    r = h.wait_report("draft", 2)
    h.expect(r["paragraphs"] and r["paragraphs"][-1] == line, f"the typed line should end the saved draft: {r['paragraphs']}")
    h.expect(active() == "report-edit", f"after saving, focus should be back on Edit; it is on {active()!r}")
    keys(Keys.TAB)
    h.expect(active() == "report-sign", f"Tab from Edit should reach Sign; focus is on {active()!r}")
    keys(Keys.ENTER)
    h.wait(lambda: h.dialog_open("dialog#report-sign-dialog") and active() == "report-sign-cancel",
           "Enter on Sign to open the dialog with focus on its Cancel button")
    keys(Keys.ESCAPE)
    h.wait(lambda: not h.dialog_open("dialog#report-sign-dialog"), "Escape to close the sign dialog")
    h.expect(active() == "report-sign", f"after Escape focus should be back on Sign; it is on {active()!r}")
    h.expect(h.api_report(analysis_id)["status"] == "draft", "Escape in the sign dialog signed the report")
    keys(Keys.ENTER)
    h.wait(lambda: h.dialog_open("dialog#report-sign-dialog") and active() == "report-sign-cancel", "the sign dialog to open again")
    check_names("sign dialog")
    h.check_contrast("sign dialog")
    ActionChains(h.driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    h.expect(active() == "report-sign-confirm", f"Shift+Tab from Cancel should reach Sign report; focus is on {active()!r}")
    keys(Keys.ENTER)
    h.wait_report("signed", 3)
    h.expect(active() == "report-amend", f"after signing, focus should be on Amend; it is on {active()!r}")
    check_names("analysis with the signed report")
    h.check_contrast("analysis with the signed report")
    h.screenshot("report-signed")
    h.harvest()


def scenario_measure_bytes(h):
    """Bytes a clinician's browser downloads to open one analysis with an empty cache."""
    scans = [h.scan] + ([os.path.abspath(os.environ["MEDISCOPE_SCAN2"])] if os.environ.get("MEDISCOPE_SCAN2") else [])
    # 1. Make the analyses through the dashboard.
    h.start()
    screen = h.sign_in(h.clinician, h.password)
    ids = []
    for scan in scans:
        if h.screen() != "new":
            h.nav("new", "new")
        patient = new_patient("P-BYTES")
        h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
        h.fill_analysis_form(patient, scan)
        h.find("button#analyse-submit").click()
        ids.append(h.wait_for_analysis())
        h.wait_images("img.heatmap")
    h.harvest()
    problems_first = list(h.problems)
    h.stop()

    # 2. A fresh profile (new --user-data-dir: empty cache): sign in through the API, then open the analysis.
    h.start()
    h.go("/api/health")   # a same-origin page that loads none of the dashboard's assets
    status = h.driver.execute_async_script("""const done = arguments[arguments.length - 1];
        fetch('/api/session', {method: 'POST', headers: {'Content-Type': 'application/json'}, credentials: 'same-origin',
              body: JSON.stringify({username: arguments[0], password: arguments[1]})})
          .then(r => done(r.status), e => done(String(e)));""", h.clinician, h.password)
    h.require(status == 201, f"POST /api/session answered {status}")

    entries_js = """return [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
        .map(e => ({name: e.name, type: e.initiatorType || e.entryType, transfer: e.transferSize,
                    encoded: e.encodedBodySize, decoded: e.decodedBodySize}))"""

    def measure(analysis_id):
        h.go(f"/analyses/{analysis_id}")
        h.wait_screen("analysis", timeout=60)
        h.wait_images("img#scan-image")
        h.wait_images("img.heatmap")
        h.wait(lambda: h.js("return [...document.images].every(i => i.complete)"), "every image to finish loading")
        # Let late requests (fonts, lazy images) land: wait until the entry count is stable for 1 s.
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 1.0:
            n = h.js("return performance.getEntriesByType('resource').length")
            if n != last:
                last, stable_since = n, time.monotonic()
            time.sleep(0.2)
        rows = h.js(entries_js)
        for r in rows:
            r["path"] = urllib.parse.urlsplit(r["name"]).path or r["name"]
        dims = h.js("const i = document.getElementById('scan-image'); return [i.naturalWidth, i.naturalHeight]")
        h.harvest()
        return rows, dims

    cold_rows, cold_dims = measure(ids[0])
    h.screenshot("analysis-cold")
    warm = None
    if len(ids) > 1:
        warm = measure(ids[1])

    def table(title, rows):
        print(f"\n{title}")
        print(f"{'resource':60} {'type':14} {'transfer':>9} {'encoded':>9} {'decoded':>9}")
        for r in rows:
            print(f"{r['path'][:60]:60} {r['type']:14} {r['transfer']:9d} {r['encoded']:9d} {r['decoded']:9d}")
        t = {k: sum(r[k] for r in rows) for k in ("transfer", "encoded", "decoded")}
        print(f"{'total (' + str(len(rows)) + ' requests)':60} {'':14} {t['transfer']:9d} {t['encoded']:9d} {t['decoded']:9d}")
        t["by_kind"] = {}
        for r in rows:
            kind = "images" if r["type"] == "img" else "API (JSON)" if r["path"].startswith("/api/") else "app (HTML, CSS, JS)"
            t["by_kind"][kind] = t["by_kind"].get(kind, 0) + r["transfer"]
        print("transferSize by kind: " + ", ".join(f"{k} {v}" for k, v in t["by_kind"].items()))
        return t

    cold_total = table(f"cold cache, /analyses/{ids[0]} ({os.path.basename(scans[0])}, scan shown at {cold_dims[0]}x{cold_dims[1]}):", cold_rows)
    result = {"scans": [os.path.basename(s) for s in scans], "cold": {"analysis": ids[0], "scan_display": cold_dims,
              "rows": cold_rows, "total": cold_total}}
    if warm:
        warm_total = table(f"warm cache (same profile, then a second analysis /analyses/{ids[1]}, {os.path.basename(scans[1])}):", warm[0])
        result["warm"] = {"analysis": ids[1], "scan_display": warm[1], "rows": warm[0], "total": warm_total}
    print(f"\ncold total transferSize: {cold_total['transfer']} bytes = {cold_total['transfer'] / 1024:.1f} KiB "
          f"(aim: under 300 KB: {'met' if cold_total['transfer'] < 300_000 else 'MISSED'})")
    out = os.environ.get("MEDISCOPE_BYTES_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
        print(f"figures: {out}")
    h.problems = problems_first + h.problems
