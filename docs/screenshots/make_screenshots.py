"""
Take the Explorer screenshots in this folder.

Run from the repository root with the project's virtualenv:

    python docs/screenshots/make_screenshots.py

It starts a TwistedPACS server on free loopback ports with a temporary store,
stores a few pydicom test files and synthetic patients over REST, uploads a
mixed set of files through the page in headless Chromium, and writes
C{patients.png} and C{upload.png} at 1280x800 beside this script.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPOSITORY)

from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.test_explorer_browser import (
    DICOM_NAMES,
    TEST_FILES,
    RunningServer,
    start_browser,
    synthetic_patient,
)

UPLOAD_NAMES = DICOM_NAMES[:4] + ["MR_small_implicit.dcm", "crayons.icc"]
VIEWPORT = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}


def wait_for(driver: object, condition: str, timeout: float = 60.0) -> None:
    """
    Wait until the JavaScript expression C{condition} is truthy.
    """
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(f"return ({condition});")
    )


def main() -> None:
    """
    Start a server and a browser, and write both screenshots.
    """
    server = RunningServer()
    driver = start_browser(os.path.join(server.directory, "profile"))
    try:
        # The window size includes the browser's own frame, so the page's
        # viewport is set through the DevTools protocol instead.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", VIEWPORT)
        for name in DICOM_NAMES[4:]:
            with open(os.path.join(TEST_FILES, name), "rb") as source:
                server.post_instance(source.read())
        for index in range(60):
            server.post_instance(synthetic_patient(index))

        driver.get(server.base_url + "app/explorer.html#patients")
        wait_for(driver, "document.body.dataset.renderedHash === location.hash")
        driver.save_screenshot(os.path.join(HERE, "patients.png"))

        driver.get(server.base_url + "app/explorer.html#upload")
        wait_for(driver, "document.body.dataset.renderedHash === location.hash")
        paths = [os.path.join(TEST_FILES, name) for name in UPLOAD_NAMES]
        paths.append(os.path.join(TEST_FILES, "dicomdirtests", "DICOMDIR"))
        driver.find_element(By.ID, "file-input").send_keys("\n".join(paths))
        driver.find_element(By.ID, "upload-button").click()
        wait_for(
            driver, "document.getElementById('upload-summary').dataset.state === 'done'"
        )
        driver.save_screenshot(os.path.join(HERE, "upload.png"))
    finally:
        driver.quit()
        server.stop()


if __name__ == "__main__":
    main()
