"""Scenarios: the harness's own self-test, and the flows of a clinician and of an admin (sign-in,
navigation by role, an analysis end to end, users and the audit log)."""

import json
import re
import time
import urllib.parse
import uuid

from harness_common import SCREEN_TIMEOUT, Select, new_patient, norm


def scenario_selftest(h):
    """The harness itself: the collector sees CSP violations, uncaught errors and unhandled rejections."""
    h.start()
    h.go("/api/health")   # any page of the stack carries the CSP
    h.harvest()
    before = len(h.problems)
    h.js("""const s = document.createElement('script'); s.textContent = 'window.__inlineRan = true';
            document.body.appendChild(s);""")
    # Code run through WebDriver counts as cross-origin for error reporting: Chrome mutes it (the page
    # sees "Script error." and fires no unhandledrejection for its promises), while the console shows
    # the real text. So the uncaught error is checked in both channels, and the rejection listener with
    # the event Chrome would fire for a page's own module.
    h.js("setTimeout(() => { throw new Error('selftest uncaught error') }, 0);"
         "Promise.reject(new Error('selftest console rejection'));"
         "const p = Promise.reject(new Error('selftest unhandled rejection')); p.catch(() => {});"
         "window.dispatchEvent(new PromiseRejectionEvent('unhandledrejection', {promise: p, reason: new Error('selftest unhandled rejection')}));"
         "const i = document.createElement('img'); i.alt = 'selftest'; i.src = '/selftest-not-an-image.png'; document.body.appendChild(i);")
    time.sleep(0.5)
    h.require(h.js("return window.__inlineRan === undefined"), "the CSP did not block an injected inline <script>")
    h.harvest()
    seen = [d for _, d in h.problems[before:]]
    print("selftest saw:\n  " + "\n  ".join(seen))
    checks = {
        "collector: securitypolicyviolation script-src": lambda d: d.startswith("page:") and '"kind": "csp"' in d and "script-src" in d,
        "console: CSP violation of script-src": lambda d: d.startswith("console SEVERE") and "Content Security Policy" in d and "script-src" in d,
        "collector: uncaught error": lambda d: '"kind": "error"' in d and ("selftest uncaught error" in d or "Script error." in d),
        "console: uncaught error": lambda d: d.startswith("console SEVERE") and "Uncaught Error: selftest uncaught error" in d,
        "console: unhandled rejection": lambda d: d.startswith("console SEVERE") and "Uncaught (in promise) Error: selftest console rejection" in d,
        "collector: unhandled rejection": lambda d: '"kind": "unhandledrejection"' in d and "selftest unhandled rejection" in d,
        "collector: an image that failed to load": lambda d: '"kind": "resource"' in d and "selftest-not-an-image.png" in d,
    }
    for name, test in checks.items():
        h.expect(any(test(d) for d in seen), f"the harness did not detect: {name}")
    # The deliberate problems above are this scenario's expected outcome, not failures.
    h.problems = h.problems[:before]
    # The same CSP check on the dashboard's own page (served by nginx's static locations).
    h.go("/signin")
    h.wait_screen("signin")
    h.js("""const s = document.createElement('script'); s.textContent = 'window.__inlineRan = true';
            document.body.appendChild(s);""")
    time.sleep(0.3)
    h.require(h.js("return window.__inlineRan === undefined"), "the CSP of /signin did not block an injected inline <script>")
    h.harvest()
    seen = [d for _, d in h.problems[before:]]
    h.expect(any('"kind": "csp"' in d for d in seen) and any(d.startswith("console SEVERE") and "Content Security Policy" in d for d in seen),
             f"on /signin the injected inline script was not reported by both channels: {seen}")
    h.problems = h.problems[:before]
    h.go("/api/health")
    # An allowance holds inside its block only.
    message = "selftest scoped console error"
    with h.allow(rf'^\S+ \d+:\d+ "{message}"$', "selftest: the allowance under test"):
        h.js("console.error(arguments[0])", message)
    h.require(len(h.problems) == before, f"an allowed console message was reported: {h.problems[before:]}")
    h.js("console.error(arguments[0])", message)
    h.harvest()
    h.require(any(message in d for _, d in h.problems[before:]),
              "a console error outside its allowance block was not reported")
    h.problems = h.problems[:before]
    # The global allowance: GET /api/me signed out (401) through fetch, as the dashboard does.
    h.driver.execute_async_script("const done = arguments[arguments.length - 1]; fetch('/api/me').then(r => done(r.status), e => done(String(e)))")
    h.harvest()
    h.require(len(h.problems) == before, f"the allowed 401 of GET /api/me was reported: {h.problems[before:]}")
    h.require(any("/api/me" in n and n.startswith("allowed") for n in h.log_notes),
              f"the 401 of GET /api/me did not show in the console at all (the allowance pattern may be stale): {h.log_notes}")
    h.driver.execute_async_script("const done = arguments[arguments.length - 1]; fetch('/api/users').then(r => done(r.status), e => done(String(e)))")
    h.harvest()
    h.require(any("/api/users" in d and "401" in d for _, d in h.problems[before:]),
              f"a 401 of GET /api/users (not allowed) was not reported: {h.problems[before:]}")
    h.problems = h.problems[:before]


def expect_navigation(h, role, shown, absent):
    """The role's navigation links exist; the others are absent from the DOM (not merely hidden)."""
    for key in shown:
        h.expect(h.exists(f'nav#main-nav a[data-nav="{key}"]'), f"{role} navigation should have a[data-nav={key}]")
    for key in absent:
        h.expect(not h.exists(f'a[data-nav="{key}"]'), f"{role} must not see a[data-nav={key}] (absent from the DOM)")


def scenario_clinician_flow(h):
    h.start()
    h.go("/")
    h.wait_screen("signin")
    h.check_contrast("sign-in")
    h.screenshot("signin")
    h.harvest()

    screen = h.sign_in(h.clinician, h.password)
    h.expect(screen in ("new", "history"), f"a clinician should land on new analysis or history; landed on {screen!r}")
    expect_navigation(h, "clinician", shown=("new", "history", "studies"), absent=("users", "audit"))
    if screen != "new":
        h.nav("new", "new")

    patient = new_patient()
    h.sensitive(patient["id"], patient["name"], patient["note"], patient["body_part"])
    h.fill_analysis_form(patient)
    h.screenshot("new-analysis")
    # Which headers the upload sets (the page stays one document: the record survives the navigation).
    h.js("""window.__uploadHeaders = [];
            const set = XMLHttpRequest.prototype.setRequestHeader;
            XMLHttpRequest.prototype.setRequestHeader = function (name, value) {
                window.__uploadHeaders.push([name, value]); return set.call(this, name, value); };""")
    h.find("button#analyse-submit").click()
    analysis_id = h.wait_for_analysis()
    h.harvest()
    keys = [v for (n, v) in h.js("return window.__uploadHeaders || []") if n.lower() == "idempotency-key"]
    h.expect(len(keys) == 1 and re.fullmatch(r'"[0-9a-f]{32}"', keys[0]),
             f"the upload should send one Idempotency-Key (a quoted 128-bit hex string); it sent {keys}")

    facts = h.check_analysis_screen(patient, analysis_id)
    print(f"analysis {analysis_id}: " + json.dumps(facts["results"]))
    leaks = h.url_leaks(patient["id"], patient["name"])
    h.expect(not leaks, f"the analysis URL {h.driver.current_url} holds patient details: {leaks}")
    h.expect(re.fullmatch(r"/analyses/[^/?#]+", h.path()) and not urllib.parse.urlsplit(h.driver.current_url).query,
             f"the analysis URL should be /analyses/{{id}} only; it is {h.driver.current_url}")

    # Overlay mode, opacity slider.
    first = h.find("article.result")
    toggle = h.find("button.layout-toggle", first)
    pressed = toggle.get_attribute("aria-pressed")
    h.expect(pressed in ("true", "false"), f"button.layout-toggle aria-pressed is {pressed!r}, want 'true' or 'false'")
    if pressed == "true":   # start from overlay mode
        toggle.click()
        h.wait(lambda: h.find("button.layout-toggle", h.find("article.result")).get_attribute("aria-pressed") == "false",
               "the layout toggle to switch to overlay mode")
    h.screenshot("analysis-overlay")

    def settled_opacity():
        """The heatmap's computed opacity once a CSS transition (if any) is over."""
        last = None
        for _ in range(30):
            o = float(h.js("return getComputedStyle(document.querySelector('article.result img.heatmap')).opacity"))
            if last is not None and abs(o - last) < 1e-3:
                return o
            last = o
            time.sleep(0.15)
        return last

    def set_slider(value):
        h.js("""const s = document.querySelector('article.result input.opacity');
                s.focus(); s.value = arguments[0];
                s.dispatchEvent(new Event('input', {bubbles: true}));
                s.dispatchEvent(new Event('change', {bubbles: true}));""", str(value))

    original = settled_opacity()
    set_slider(20)
    low = settled_opacity()
    set_slider(80)
    high = settled_opacity()
    print(f"heatmap opacity: initial {original}, slider 20 -> {low}, slider 80 -> {high}")
    h.expect(low != original or high != original, f"the opacity slider does not change the heatmap's computed opacity (stays {original})")
    h.expect(low < high, f"opacity at slider 20 ({low}) should be lower than at 80 ({high})")
    h.expect(abs(low - 0.2) < 0.05 and abs(high - 0.8) < 0.05,
             f"the slider (0..100) should set the opacity to value/100: 20 -> {low}, 80 -> {high}")

    # Layout toggle: side by side.
    before = h.find("button.layout-toggle", h.find("article.result")).get_attribute("aria-pressed")
    h.find("button.layout-toggle", h.find("article.result")).click()
    after = h.wait(lambda: (lambda v: v if v != before else None)(
        h.find("button.layout-toggle", h.find("article.result")).get_attribute("aria-pressed")),
        "button.layout-toggle aria-pressed to flip", timeout=SCREEN_TIMEOUT)
    h.expect(after == "true", f"after the toggle, aria-pressed should be 'true' (side by side); it is {after!r}")
    h.wait_images("img.heatmap")
    h.screenshot("analysis-side-by-side")
    h.harvest()

    # Its own URL: a reload shows the same analysis.
    h.harvest()
    h.driver.refresh()
    h.wait_screen("analysis")
    h.wait_images("img.heatmap")
    again = h.analysis_facts()
    h.expect(again["id"] == analysis_id and h.path() == f"/analyses/{analysis_id}",
             f"after a reload: URL {h.path()}, data-analysis-id {again['id']!r}; want {analysis_id!r}")
    h.expect([(r["title"], r["prediction"], r["confidence"]) for r in again["results"]] ==
             [(r["title"], r["prediction"], r["confidence"]) for r in facts["results"]],
             f"after a reload the results differ: {again['results']} vs {facts['results']}")
    h.harvest()

    # History: lists it; search by patient id finds it; another id does not.
    h.nav("history", "history")
    h.wait(lambda: f"/analyses/{analysis_id}" in h.history_links(), f"history to list a.analysis-link to /analyses/{analysis_id}")
    h.screenshot("history")
    h.history_search(patient["id"])
    h.wait(lambda: h.is_ready() and h.history_links() == [f"/analyses/{analysis_id}"],
           f"the search for {patient['id']} to list exactly /analyses/{analysis_id}")
    h.screenshot("history-search")
    leaks = h.url_leaks(patient["name"])
    h.expect(not leaks, f"the history URL {h.driver.current_url} holds the patient name")
    other = new_patient("P-NONE")["id"]
    h.history_search(other)
    h.wait(lambda: h.is_ready() and not h.history_links(),
           f"the search for {other} (no such patient) to list no analysis")
    empty = h.finds("p#history-empty")
    h.expect(empty and empty[0].is_displayed() and empty[0].text.strip(),
             "p#history-empty should say that nothing matched")
    h.harvest()
    h.history_search(patient["id"])
    h.wait(lambda: h.history_links() == [f"/analyses/{analysis_id}"], "the search to find the analysis again")
    link = h.find(f'table#history-table a.analysis-link[href="/analyses/{analysis_id}"]')
    link.click()
    h.wait_screen("analysis")
    h.require(h.path() == f"/analyses/{analysis_id}", f"the history link led to {h.path()}")
    h.harvest()

    # The printable report.
    report = h.find("a#report-link").get_attribute("href")
    h.require(report, "a#report-link has no href")
    h.go(report)
    h.wait(lambda: h.js("return document.readyState") == "complete", "the report to load")
    text = h.visible_text()
    norm_text = norm(text)
    for r in facts["results"]:
        h.expect(norm(r["title"]) in norm_text, f"the report does not show the result title {r['title']!r}")
        h.expect(norm(r["prediction"]) in norm_text, f"the report does not show the prediction {r['prediction']!r} of {r['title']!r}")
    h.expect(patient["id"] in text, f"the report does not show the patient id {patient['id']!r}")
    imgs = h.images_loaded("img")
    h.expect(imgs and all(c and w > 0 for _, c, w in imgs), f"report images (complete, naturalWidth): {imgs}")
    h.screenshot("report")
    if h.failures:
        print("report text (first 1500 chars):\n" + text[:1500])
    h.harvest()

    # Back to the dashboard.
    h.driver.back()
    h.wait_screen("analysis")
    h.expect(h.path() == f"/analyses/{analysis_id}", f"back from the report: {h.path()}")
    h.harvest()

    # Sign out; the analyses are behind sign-in again.
    h.sign_out()
    h.go("/analyses")
    h.wait_screen("signin")
    h.expect(not h.exists("table#history-table"), "/analyses shows the history table while signed out")
    h.screenshot("signed-out-analyses")
    h.harvest()


def scenario_admin_flow(h):
    h.start()
    screen = h.sign_in(h.admin, h.password)
    # An admin has no patient access, so no patient screens in the navigation.
    expect_navigation(h, "admin", shown=("users", "audit"), absent=("new", "history", "studies"))
    if screen != "users":
        h.nav("users", "users")
    h.require(h.exists("table#users-table"), "no table#users-table on the users screen")
    names = h.js("return [...document.querySelectorAll('table#users-table tbody tr[data-username]')].map(r => r.dataset.username)")
    h.expect(h.clinician in names and h.admin in names, f"the users table should list {h.clinician!r} and {h.admin!r}: {names}")
    h.check_contrast("users")
    h.screenshot("users")
    h.nav("audit", "audit")
    h.require(h.exists("table#audit-table"), "no table#audit-table on the audit screen")
    h.wait(lambda: h.finds("table#audit-table tbody tr"), "the audit table to list entries (the sign-ins so far)")
    h.check_contrast("audit")
    h.screenshot("audit")

    # Admins have no patient access: the clinical screens are refused.
    for path in ("/analyses/new", "/analyses", "/studies"):
        h.go(path)
        h.wait_screen("denied")
        h.expect(not h.exists("form#analysis-form") and not h.exists("table#history-table") and not h.exists("section#studies"),
                 f"{path} shows a clinical screen to an admin")
    h.screenshot("denied-admin-analyses")

    # Add a clinician.
    h.nav("users", "users")
    username = "nurse" + uuid.uuid4().hex[:8]
    first_password = "first password " + uuid.uuid4().hex[:6]
    reset_password = "reset password " + uuid.uuid4().hex[:6]
    h.sensitive(first_password, reset_password)
    h.type_into("#new-username", username)
    h.type_into("#new-display-name", "Nurse Browsertest")
    h.type_into("#new-password", first_password)
    sel = h.find("select#new-role")
    Select(sel).select_by_value("clinician")
    h.find("button#user-add-submit").click()
    row_css = f'table#users-table tbody tr[data-username="{username}"]'
    h.wait(lambda: h.exists(row_css), f"{row_css} to appear after adding the user"
           f" (p#users-status: {h.finds('p#users-status')[0].text if h.finds('p#users-status') else '-'})")
    h.expect("clinician" in h.find(row_css).text.lower(), f"the new row should say clinician: {h.find(row_css).text!r}")
    h.screenshot("user-added")
    h.harvest()

    def api_user():
        users = h.driver.execute_async_script("""const done = arguments[arguments.length - 1];
            fetch('/api/users', {credentials: 'same-origin'}).then(r => r.json()).then(j => done(j), e => done({error: String(e)}));""")
        items = users.get("users", users.get("items", [])) if isinstance(users, dict) else users
        return next((u for u in items if u.get("username") == username), None)

    # Reset its password through the dialog.
    h.find(row_css + " button.user-password").click()
    h.wait(lambda: h.js("const d = document.getElementById('password-dialog'); return !!d && d.open"), "dialog#password-dialog to open")
    h.screenshot("password-dialog")
    h.type_into("input#reset-password", reset_password)
    h.find("button#reset-password-submit").click()
    h.wait(lambda: h.js("const d = document.getElementById('password-dialog'); return !!d && !d.open"), "dialog#password-dialog to close after the reset")
    h.harvest()

    # Disable, then enable.
    toggle = lambda: h.find(row_css + " button.user-toggle")
    h.expect(toggle().text.strip() == "Disable", f"a new user's toggle should say 'Disable'; it says {toggle().text!r}")
    toggle().click()
    h.wait(lambda: toggle().text.strip() == "Enable", "the toggle to say 'Enable' after disabling")
    u = api_user()
    h.expect(u and u.get("disabled") is True, f"GET /api/users should show {username} disabled now: {u}")
    toggle().click()
    h.wait(lambda: toggle().text.strip() == "Disable", "the toggle to say 'Disable' after enabling")
    u = api_user()
    h.expect(u and u.get("disabled") is False, f"GET /api/users should show {username} enabled again: {u}")
    h.harvest()

    # Audit: filter by action user.create.
    h.nav("audit", "audit")
    action = h.find("#audit-action")
    if action.tag_name == "select":
        Select(action).select_by_value("user.create")
    else:
        action.clear()
        action.send_keys("user.create")
    h.find("button#audit-apply").click()
    def filtered():
        rows = [r.text for r in h.finds("table#audit-table tbody tr")]
        return h.is_ready() and rows and all("user.create" in t for t in rows) and rows
    rows = h.wait(filtered, "the audit table to show only user.create entries")
    h.expect(any((u and u.get("id") and u["id"] in t) or username in t for t in rows),
             f"no user.create row names the new user ({username}, id {u.get('id') if u else '?'}): {rows}")
    h.screenshot("audit-user-create")
    h.harvest()

    h.sign_out()

    # The first password no longer works (the reset took effect); the form says so.
    with h.allow(rf"^{re.escape(h.base)}/api/session - Failed to load resource: the server responded with a status of 401 \(Unauthorized\)$",
                 "a deliberate sign-in with the password the admin just replaced"):
        h.wait_screen("signin")
        h.type_into("input#signin-username", username)
        h.type_into("input#signin-password", first_password)
        h.find("button#signin-submit").click()
        h.wait(lambda: h.find("p#signin-error").text.strip(), "p#signin-error to explain the refused sign-in")
        h.expect(h.screen() == "signin", f"the replaced password signed {username} in (screen {h.screen()!r})")
        h.screenshot("signin-refused")

    # The new clinician signs in with the reset password.
    screen = h.sign_in(username, reset_password, display_name="Nurse Browsertest")
    h.expect(screen in ("new", "history"), f"the new clinician landed on {screen!r}")
    h.expect(not h.exists('a[data-nav="users"]') and not h.exists('a[data-nav="audit"]'),
             "a clinician sees admin navigation (a[data-nav=users|audit])")
    h.harvest()
    # Opened directly, the admin screens are refused (the dashboard knows the role: no API call, no 403).
    for path in ("/admin/users", "/admin/audit"):
        h.go(path)
        h.wait_screen("denied")
        h.expect(not h.exists("table#users-table") and not h.exists("table#audit-table"),
                 f"{path} shows an admin table to a clinician")
        msg = h.find("main#main").text.strip()
        h.expect(msg, f"{path}: the denied screen shows no message")
        h.screenshot("denied-" + path.rsplit("/", 1)[1])
