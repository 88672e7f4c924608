"""What every part of the dashboard's browser tests shares: selenium, the paths, window sizes and
timeouts, the Failure that ends a scenario, and small helpers for report text and test patients."""

import os
import re
import sys
import uuid

# selenium is imported once, here, and its names are taken from this module by the others: a
# missing (or too old) selenium is reported before anything runs.
try:
    from selenium import webdriver
    from selenium.common.exceptions import (NoAlertPresentException, UnexpectedAlertPresentException,
                                            WebDriverException)
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.common.print_page_options import PrintOptions
    from selenium.webdriver.support.ui import Select
except ImportError as error:  # never "pass" without a browser
    print(f"dashboard.py: selenium is missing ({error}); run it with /usr/bin/python3 "
          "(Debian's python3-selenium), see deploy/install-deps.sh", file=sys.stderr)
    sys.exit(1)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 900)
TABLET = (820, 1180)

SCREEN_TIMEOUT = 60      # s: a screen's data loads from a local stack (on a loaded CI machine)
ANALYSIS_TIMEOUT = 180   # s: upload + inference (the first one loads the model; tests run debug builds)
IMAGE_TIMEOUT = 60       # s
DRAFT_TIMEOUT = 60       # s: the report job process writes the draft (the template: well under a second)


class Failure(Exception):
    """A requirement did not hold; the scenario cannot go on."""


def env(name, default=None, required=False):
    value = os.environ.get(name, default)
    if required and not value:
        print(f"dashboard.py: {name} is not set", file=sys.stderr)
        sys.exit(2)
    return value


def norm(text):
    """Case- and spacing-insensitive form for comparing the same words shown by two pages."""
    return re.sub(r"\s+", " ", (text or "").replace("_", " ")).strip().lower()


def paragraphs(text):
    """A report text as the dashboard shows it: paragraphs at blank lines, trimmed."""
    return [p.strip() for p in re.split(r"\n[ \t]*\n", text or "") if p.strip()]


def printed_paragraphs(text):
    """A report text as the printed report holds it: paragraphs at blank lines, each keeping its lines (trimmed)."""
    return ["\n".join(line.strip() for line in p.split("\n") if line.strip()) for p in paragraphs(text)]


def new_patient(prefix="P-BR"):
    tag = uuid.uuid4().hex[:8].upper()
    return {"id": f"{prefix}-{tag}", "name": f"Ada Browsertest {tag.title()}", "age": 54, "sex": "female",
            "modality": "MRI", "body_part": f"left temporal lobe {tag.lower()}",
            "note": f"Follow-up after resection, compare with prior study {tag.lower()}"}
