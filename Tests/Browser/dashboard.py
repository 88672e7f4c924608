#!/usr/bin/python3
"""Real-browser tests of the Mediscope dashboard (headless Chromium through chromedriver + Selenium).

    /usr/bin/python3 Tests/Browser/dashboard.py --scenario clinician_flow
    /usr/bin/python3 Tests/Browser/dashboard.py --list

Use /usr/bin/python3 (Debian's, which has python3-selenium); stdlib + selenium only.

Environment:
    MEDISCOPE_URL         the stack, e.g. http://127.0.0.1:8080 (required)
    MEDISCOPE_PASSWORD    password of the clinician and the admin (required)
    MEDISCOPE_CLINICIAN   clinician username (default: clinician)
    MEDISCOPE_ADMIN       admin username (default: admin)
    MEDISCOPE_SCAN        a JPEG to upload (default: Tests/Artifacts/reference/scans/scan_baseline.jpg)
    MEDISCOPE_SCAN2       measure_bytes only: a second, different JPEG for the warm-cache figure (optional)
    MEDISCOPE_ARTIFACTS   where screenshots go (default: Tests/Artifacts/browser)
    MEDISCOPE_BYTES_JSON  measure_bytes only: also write the figures there as JSON (optional)
    MEDISCOPE_LLM_REPLY   report_llm only: the text the stack's stand-in LLM answers with (required there)
    MEDISCOPE_LLM_MODEL   report_llm only: the model name that reply carries (required there)
    MEDISCOPE_SERIES_CAP  studies only: the stack's dicom.max_instances_per_series (default 3); the
                          studies scenario wants a stack of its own (its list starts empty)

Every scenario also checks that nothing went wrong in the page: console messages at SEVERE level
(network errors, CSP "Refused to ..." reports, uncaught exceptions), and what an in-page collector
(installed before any page script runs) saw: `securitypolicyviolation` events, `error` events
(uncaught exceptions and resources that failed to load) and unhandled promise rejections. A message
that is expected is allowed only by an exact pattern with its reason (`Browser.allowed` in harness_browser.py).

Exit status: 0 when every assertion of the scenario held, 1 when one failed (the reasons, the URL,
the page's visible text and a FAILED-<scenario>.png screenshot are printed), 2 for a usage error.
Lines "MEDISCOPE-SENSITIVE: <json string>" name the patient details and passwords the scenario
typed, so the caller can check that no server log holds them.
"""

import argparse
import os
import signal
import sys
import time
import traceback

# The harness and the scenarios are modules beside this file (a script's folder is on sys.path).
from harness import Harness
from harness_common import CHROMEDRIVER, CHROMIUM, Failure
from scenarios_accounts import scenario_admin_flow, scenario_clinician_flow, scenario_selftest
from scenarios_analysis import (scenario_delete_analysis, scenario_dicom_prefill, scenario_drop_and_progress,
                                scenario_out_of_scope)
from scenarios_layout import scenario_keyboard, scenario_measure_bytes, scenario_tablet_layout
from scenarios_print import scenario_report_print, scenario_report_printed
from scenarios_report import scenario_report_draft, scenario_report_leave, scenario_report_sign
from scenarios_studies import scenario_studies
from scenarios_text import scenario_bidi_isolation, scenario_report_llm, scenario_report_markup, scenario_xss_note


SCENARIOS = {
    "selftest": scenario_selftest,
    "clinician_flow": scenario_clinician_flow,
    "admin_flow": scenario_admin_flow,
    "xss_note": scenario_xss_note,
    "bidi_isolation": scenario_bidi_isolation,
    "dicom_prefill": scenario_dicom_prefill,
    "delete_analysis": scenario_delete_analysis,
    "drop_and_progress": scenario_drop_and_progress,
    "report_print": scenario_report_print,
    "out_of_scope": scenario_out_of_scope,
    "report_draft": scenario_report_draft,
    "report_sign": scenario_report_sign,
    "report_leave": scenario_report_leave,
    "report_printed": scenario_report_printed,
    "report_markup": scenario_report_markup,
    "report_llm": scenario_report_llm,
    "studies": scenario_studies,
    "tablet_layout": scenario_tablet_layout,
    "keyboard": scenario_keyboard,
    "measure_bytes": scenario_measure_bytes,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    args = parser.parse_args()
    if args.list:
        for name, fn in SCENARIOS.items():
            print(name)
        return 0
    if not args.scenario:
        parser.error("--scenario NAME is required (see --list)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            print(f"dashboard.py: {path} is missing: install chromium and chromium-driver (deploy/install-deps.sh)")
            return 1
    def terminated(signum, frame):   # the caller's timeout: fail, but still quit Chromium
        raise Failure(f"terminated by signal {signum} (the caller's timeout)")
    signal.signal(signal.SIGTERM, terminated)
    h = Harness(args.scenario)
    stale = os.path.join(h.artifacts, f"FAILED-{args.scenario}.png")
    if os.path.exists(stale):
        os.remove(stale)   # from an earlier run: only this run's failure may leave one
    started = time.monotonic()
    print(f"scenario {args.scenario} against {h.base}")
    crashed = None
    try:
        SCENARIOS[args.scenario](h)
        h.harvest()
    except Failure as error:
        crashed = str(error)
    except Exception as error:  # a harness bug or a WebDriver error: still report the page
        crashed = f"{error.__class__.__name__}: {error}\n{traceback.format_exc()}"
    if crashed:
        print(f"FAIL: {crashed}")
        h.failures.append(crashed)
        try:
            h.harvest()
        except Exception as error:
            print(f"note: could not collect problems after the failure: {error}")
    if h.problems:
        h.failures.append(f"{len(h.problems)} problem(s) logged in the browser")
    for note in h.log_notes:
        print(f"note: {note}")
    print(f"pages checked: {len(h.pages)}")
    for page, problem in h.problems:
        print(f"PROBLEM ({page}): {problem}")
    if h.failures and h.driver:
        try:
            h.screenshot(f"FAILED-{args.scenario}")
            print(f"URL at failure: {h.driver.current_url}; main: {h.main_state()}")
            print("---- visible text of the page ----")
            print(h.visible_text()[:6000])
            print("---- end of visible text ----")
        except Exception as error:
            print(f"note: could not capture the failed page: {error}")
    h.stop()
    elapsed = time.monotonic() - started
    if h.failures:
        print(f"\nscenario {args.scenario}: FAILED ({len(h.failures)} failure(s), {elapsed:.1f} s)")
        for i, f in enumerate(h.failures, 1):
            print(f"  {i}. {f.splitlines()[0]}")
        return 1
    print(f"\nscenario {args.scenario}: passed ({elapsed:.1f} s, no problems logged on {len(h.pages)} page(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
