"""The browser side of the harness: Chromium through chromedriver and what it saw (see Browser)."""

import base64
import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse

from harness_common import (CHROMEDRIVER, CHROMIUM, DESKTOP, IMAGE_TIMEOUT, ROOT, SCREEN_TIMEOUT, By, Failure,
                            NoAlertPresentException, Options, Service, UnexpectedAlertPresentException, WebDriverException,
                            env, webdriver)
from harness_page import COLLECTOR, CONTRACT, SELECT_VALUES, SIGNED_IN


class Browser:
    """Headless Chromium for one scenario: starting and stopping it, collecting what went wrong in
    the page, soft and hard checks, waiting for the dashboard's screens, finding elements and
    screenshots. The dashboard's own steps are added by harness.Harness."""

    def __init__(self, scenario, size=DESKTOP):
        self.scenario = scenario
        self.size = size
        self.base = env("MEDISCOPE_URL", required=True).rstrip("/")
        self.password = env("MEDISCOPE_PASSWORD", required=True)
        self.clinician = env("MEDISCOPE_CLINICIAN", "clinician")
        self.admin = env("MEDISCOPE_ADMIN", "admin")
        self.scan = os.path.abspath(env("MEDISCOPE_SCAN", os.path.join(ROOT, "Tests/Artifacts/reference/scans/scan_baseline.jpg")))
        self.artifacts = os.path.abspath(env("MEDISCOPE_ARTIFACTS", os.path.join(ROOT, "Tests/Artifacts/browser")))
        os.makedirs(self.artifacts, exist_ok=True)
        self.driver = None
        self.failures = []        # soft failures (the scenario goes on)
        self.problems = []        # (page label, description)
        self.pages = []           # every page (URL) checked
        self.profile = None
        # (compiled pattern, reason): console messages that are expected. Exact and narrow.
        base = re.escape(self.base)
        self.allowed = [
            (re.compile(rf"^{base}/api/me - Failed to load resource: the server responded with a status of 401 \(Unauthorized\)$"),
             "GET /api/me answers 401 while signed out: the dashboard asks it to decide whether to show the sign-in screen"),
        ]
        self.log_notes = []       # console messages below SEVERE, printed for the record
        self.contract_checked = set()

    # ------------------------------------------------------------ driver
    def start(self, size=None):
        size = size or self.size
        options = Options()
        options.binary_location = CHROMIUM
        self.profile = tempfile.mkdtemp(prefix="mediscope-chrome-")   # a fresh profile: empty cache, no cookies
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    f"--window-size={size[0]},{size[1]}", f"--user-data-dir={self.profile}",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--password-store=basic", "--lang=en-US"]:
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        options.set_capability("unhandledPromptBehavior", "ignore")   # an alert stays open for check_no_alert()
        try:
            self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        except WebDriverException as error:
            raise Failure(f"chromium did not start through {CHROMEDRIVER}: {error.msg}")
        self.driver.set_page_load_timeout(60)
        self.driver.set_script_timeout(60)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COLLECTOR})
        self.set_viewport(size)

    def set_viewport(self, size):
        """Makes the layout viewport (innerWidth x innerHeight) exactly `size`: --window-size is the window's."""
        self.driver.get("about:blank")
        for _ in range(3):
            iw, ih = self.driver.execute_script("return [window.innerWidth, window.innerHeight]")
            if (iw, ih) == tuple(size):
                return
            rect = self.driver.get_window_size()
            self.driver.set_window_size(rect["width"] + size[0] - iw, rect["height"] + size[1] - ih)
        iw, ih = self.driver.execute_script("return [window.innerWidth, window.innerHeight]")
        if (iw, ih) != tuple(size):
            raise Failure(f"could not make the viewport {size[0]}x{size[1]} (it is {iw}x{ih})")

    def stop(self):
        if self.driver:
            try:
                self.driver.quit()
            except Exception as error:  # the scenario's own outcome matters more
                print(f"note: driver.quit failed: {error}")
            self.driver = None
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    # ------------------------------------------------------------ problems
    def harvest(self):
        """Collects console messages and what the in-page collector saw since the last call."""
        if not self.driver:
            return
        self.check_no_alert()
        try:
            url = self.driver.current_url
        except WebDriverException:
            url = "?"
        if url.startswith(("http://", "https://")):
            try:
                installed, found = self.driver.execute_script(
                    "return [window.__mediscopeProblemsInstalled === true, (window.__mediscopeProblems || []).splice(0)]")
            except WebDriverException as error:
                installed, found = True, []
                self.problems.append((url, f"could not read the in-page problem collector: {error.msg}"))
            if not installed:
                self.problems.append((url, "harness: the problem collector is not installed in this page"))
            for p in found:
                self.problems.append((p.get("page", url), "page: " + json.dumps(p, sort_keys=True)))
            if url not in self.pages:
                self.pages.append(url)
        for entry in self.driver.get_log("browser"):
            message, level = entry.get("message", ""), entry.get("level", "")
            if level != "SEVERE":
                self.log_notes.append(f"console {level} [{entry.get('source')}] {message}")
                continue
            reason = next((why for pattern, why in self.allowed if pattern.match(message)), None)
            if reason:
                self.log_notes.append(f"allowed console SEVERE ({reason}): {message}")
            else:
                self.problems.append((url, f"console SEVERE [{entry.get('source')}] {message}"))

    class _Allow:
        def __init__(self, harness, pattern, reason):
            self.harness, self.item = harness, (re.compile(pattern), reason)

        def __enter__(self):
            self.harness.allowed.append(self.item)

        def __exit__(self, *exc):
            try:
                self.harness.harvest()
            finally:
                self.harness.allowed.remove(self.item)
            return False

    def allow(self, pattern, reason):
        """`with h.allow(regex, why):` allows a console message matching regex (fully) inside the block."""
        return Browser._Allow(self, pattern, reason)

    def check_no_alert(self):
        try:
            alert = self.driver.switch_to.alert
        except NoAlertPresentException:
            return
        text = alert.text
        alert.accept()
        self.fail_soft(f"a JavaScript dialog opened with text {text!r} (on {self.driver.current_url})")

    # ------------------------------------------------------------ checks
    def fail_soft(self, message):
        print(f"FAIL: {message}")
        self.failures.append(message)

    def expect(self, condition, message):
        if not condition:
            self.fail_soft(message)
        return bool(condition)

    def require(self, condition, message):
        if not condition:
            raise Failure(message)

    # ------------------------------------------------------------ navigation and waiting
    def url(self, path):
        return self.base + path

    def path(self):
        return urllib.parse.urlsplit(self.driver.current_url).path

    def go(self, path):
        self.harvest()
        self.driver.get(self.url(path) if path.startswith("/") else path)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, condition, description, timeout=SCREEN_TIMEOUT, interval=0.1):
        """Polls condition() until it returns something truthy; Failure naming `description` on timeout."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            try:
                value = condition()
                if value:
                    return value
            except UnexpectedAlertPresentException:
                self.check_no_alert()
            except WebDriverException as error:   # stale element, a page between documents, ...: poll again
                last_error = error
            if time.monotonic() >= deadline:
                extra = (f" (last error: {last_error.__class__.__name__}: {(last_error.msg or '').splitlines()[0] if last_error.msg else ''})"
                         if last_error else "")
                raise Failure(f"timed out after {timeout} s waiting for {description}{extra}; "
                              f"URL {self.driver.current_url}, main: {self.main_state()}")
            time.sleep(interval)

    def main_state(self):
        try:
            return self.js("""const m = document.getElementById('main');
                return m ? {tag: m.tagName.toLowerCase(), screen: m.dataset.screen || null, ready: m.dataset.ready || null}
                         : 'no #main element'""")
        except WebDriverException as error:
            return f"unreadable ({error.__class__.__name__})"

    def wait_screen(self, screen, timeout=SCREEN_TIMEOUT):
        """Waits for <main id="main" data-screen=SCREEN data-ready="true">."""
        def ready():
            s = self.main_state()
            return isinstance(s, dict) and s["tag"] == "main" and s["screen"] == screen and s["ready"] == "true"
        self.wait(ready, f'main#main[data-screen="{screen}"][data-ready="true"]', timeout)
        self.harvest()   # every screen is checked for problems once it is ready
        self.check_contract(screen)
        return self.driver.find_element(By.ID, "main")

    def is_ready(self):
        s = self.main_state()
        return isinstance(s, dict) and s["ready"] == "true"

    def screen(self):
        s = self.main_state()
        return s["screen"] if isinstance(s, dict) else None

    def check_contract(self, screen):
        """Soft: the selectors CONTRACT promises for this screen exist (once per screen and scenario)."""
        if screen in self.contract_checked:
            return
        self.contract_checked.add(screen)
        wanted = CONTRACT.get(screen, []) + (SIGNED_IN if screen not in ("signin",) else [])
        missing = self.js("return arguments[0].filter(s => !document.querySelector(s))", wanted)
        for css in missing:
            self.fail_soft(f"DOM contract: the {screen} screen has no {css}")
        if screen == "signin":
            self.expect(not self.exists("nav#main-nav a[data-nav]"), "DOM contract: navigation links are shown while signed out")
        if screen == "new":
            for css, values in SELECT_VALUES.items():
                have = set(self.js("const s = document.querySelector(arguments[0]); return s ? [...s.options].map(o => o.value) : []", css))
                self.expect(have == values, f"DOM contract: {css} option values are {sorted(have)}, want {sorted(values)}")

    def find(self, css, within=None):
        return (within or self.driver).find_element(By.CSS_SELECTOR, css)

    def finds(self, css, within=None):
        return (within or self.driver).find_elements(By.CSS_SELECTOR, css)

    def exists(self, css):
        return bool(self.finds(css))

    def visible_text(self):
        try:
            return self.js("return document.body ? document.body.innerText : ''") or ""
        except WebDriverException:
            return ""

    def type_into(self, css, text):
        el = self.find(css)
        el.clear()
        el.send_keys(text)
        return el

    def images_loaded(self, css):
        """[(description, complete, naturalWidth)] of the images matching css."""
        return self.js("""return [...document.querySelectorAll(arguments[0])].map(i =>
            [i.id ? '#' + i.id : (i.className ? 'img.' + String(i.className).split(' ').join('.') : 'img') + ' ' + (i.getAttribute('src') || '(no src)'),
             i.complete, i.naturalWidth])""", css)

    def wait_images(self, css, minimum=1, timeout=IMAGE_TIMEOUT):
        # loading="lazy" images load once near the viewport, as they would while the user scrolls.
        self.js("""const pending = [...document.querySelectorAll(arguments[0])].filter(i => !(i.complete && i.naturalWidth));
                   if (pending.length) { const y = scrollY; pending.forEach(i => i.scrollIntoView({block: 'center'})); scrollTo(0, y); }""", css)
        def loaded():
            imgs = self.images_loaded(css)
            return len(imgs) >= minimum and all(c and w > 0 for _, c, w in imgs) and imgs
        try:
            return self.wait(loaded, f"every '{css}' to be complete with naturalWidth > 0 (at least {minimum})", timeout)
        except Failure:
            imgs = self.images_loaded(css)
            raise Failure(f"images '{css}' did not all load within {timeout} s (want >= {minimum}); "
                          f"[description, complete, naturalWidth]: {imgs}")

    def no_horizontal_scroll(self):
        return self.js("const d = document.documentElement; return [d.scrollWidth, d.clientWidth]")

    # ------------------------------------------------------------ artifacts
    def screenshot(self, name):
        path = os.path.join(self.artifacts, f"{self.scenario}-{name}.png" if not name.startswith("FAILED-") else f"{name}.png")
        try:
            # The whole page, not only the viewport.
            w, h = self.js("const d = document.documentElement; return [Math.max(d.scrollWidth, innerWidth), "
                           "Math.max(d.scrollHeight, document.body ? document.body.scrollHeight : 0, innerHeight)]")
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": w, "height": min(h, 8000), "scale": 1}})
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        except WebDriverException:
            self.driver.save_screenshot(path)
        print(f"screenshot: {path}")
        return path
