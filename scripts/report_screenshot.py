"""Screenshot a ``report.html`` in headless Chromium, one answer opened (the picture in docs/evaluation.md).

    python scripts/report_screenshot.py runs/eval/report.html docs/eval-browser/report.png --method s3

Needs Debian's ``chromium`` and ``chromium-driver`` (the README's install command installs them) and selenium.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--method", default="s3", help="show this method's answers and open the first one")
    parser.add_argument("--outcome", default="", help="correct, incorrect or '' (all)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args(argv)
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        print("needs chromium and chromedriver: apt-get install -y chromium chromium-driver", file=sys.stderr)
        return 1
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={args.width},{args.height}"):
        options.add_argument(arg)
    options.binary_location = browser
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        chrome.get(args.report.resolve().as_uri())
        Select(chrome.find_element(By.ID, "f-method")).select_by_visible_text(args.method)
        Select(chrome.find_element(By.ID, "f-outcome")).select_by_value(args.outcome)
        first = next(e for e in chrome.find_elements(By.CSS_SELECTOR, "details.episode") if e.is_displayed())
        first.find_element(By.TAG_NAME, "summary").click()
        chrome.execute_script("document.getElementById('browser').scrollIntoView()")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        chrome.save_screenshot(str(args.out))
    finally:
        chrome.quit()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
