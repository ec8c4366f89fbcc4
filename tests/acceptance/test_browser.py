"""The drawing page in a real browser: Debian's chromium and chromium-driver, driven by selenium.

It draws a stroke on the canvas, reads the prediction the page shows, checks it
against the API's answer for the same drawing, clears, and saves a screenshot
(``test-artifacts/serving-page.png``, or under $MNISTFLOW_TEST_ARTIFACTS).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from harness.real_parts import Service
from tests.helpers import REPO

# The load test saturates both cores for seconds: the page's timed waits never run beside it.
pytestmark = [pytest.mark.xdist_group("saturates-cpu")]

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    binary = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    if not binary or not driver:  # .ci/run installs both; a missing browser is a broken set-up, not a skip
        pytest.fail("the browser test needs chromium and chromedriver on PATH (Debian: chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,600"):
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for downloads
    chrome = webdriver.Chrome(options=options, service=DriverService(executable_path=driver))
    yield chrome
    chrome.quit()


def test_drawing_a_digit_shows_the_models_top_three_and_clear_resets(browser, mnist_run, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    artifacts = Path(os.environ.get("MNISTFLOW_TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with Service(mnist_run.model, tmp_path) as service:
        browser.get(service.url + "/")
        canvas = browser.find_element(By.ID, "canvas")
        described = httpx.get(f"{service.url}/model").json()
        accuracy = f"test accuracy {100 * described['metrics']['test']['accuracy']:.2f}%"
        WebDriverWait(browser, 30).until(lambda b: accuracy in b.find_element(By.ID, "model").text)
        assert browser.find_element(By.ID, "model").get_attribute("title") == f"model sha256 {described['sha256']}"
        assert browser.find_element(By.ID, "hint").is_displayed()  # an empty page says what to do
        # A "7": a bar across the top, then a stroke down and to the left (offsets from the canvas centre).
        stroke = ActionChains(browser).move_to_element_with_offset(canvas, -70, -90).click_and_hold()
        for dx, dy in [(35, 0)] * 4 + [(-12, 30)] * 6:
            stroke = stroke.move_by_offset(dx, dy)
        stroke.release().perform()

        def shown(b):
            rows = b.find_elements(By.CSS_SELECTOR, "#top .row")
            label = b.find_element(By.ID, "prediction").text
            return (label, [r.text for r in rows]) if label and len(rows) == 3 else None

        label, rows = WebDriverWait(browser, 30).until(shown)
        # The page's answer is the API's answer for the same picture.
        drawing = base64.b64decode(browser.execute_script(
            "return document.getElementById('canvas').toDataURL('image/png').split(',')[1]"))
        api = httpx.post(f"{service.url}/predict", files={"file": ("canvas.png", drawing, "image/png")}).json()
        answer = api["predictions"][0]
        WebDriverWait(browser, 30).until(lambda b: shown(b) and shown(b)[0] == answer["label"])
        label, rows = shown(browser)
        assert label == answer["label"]
        for row, top in zip(rows, answer["top"]):
            assert row.split()[0] == top["label"] and row.split()[-1] == f"{100 * top['probability']:.1f}%"
        assert label == "7", f"a drawn 7 read as {label}: {rows}"
        assert not browser.find_element(By.ID, "hint").is_displayed()
        # "Wrong? It is a ..." offers every class but the model's own answer.
        assert not browser.find_element(By.ID, "correct-7").is_displayed()
        assert browser.find_element(By.ID, "correct-3").is_displayed()

        # "Wrong? It is a 3": the drawing lands in the inbox with that label, for intake to review.
        browser.find_element(By.ID, "correct-3").click()
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "thanks").text
                                         or b.find_element(By.ID, "error").text)
        assert "kept as a 3" in browser.find_element(By.ID, "thanks").text, browser.find_element(By.ID, "error").text
        browser.save_screenshot(str(artifacts / "serving-page.png"))
        records = list((tmp_path / "registry/inbox").glob("*.json"))
        assert len(records) == 1
        record = json.loads(records[0].read_text())
        assert (record["label"], record["predicted"], record["model_sha256"]) == ("3", "7", api["model"]["sha256"])
        assert record["model_known"] is True
        assert records[0].with_suffix(".png").read_bytes() == drawing  # the very picture that was answered

        browser.find_element(By.ID, "clear").click()
        WebDriverWait(browser, 5).until(lambda b: not b.find_element(By.ID, "prediction").text)
        assert browser.find_elements(By.CSS_SELECTOR, "#top .row") == []
        assert browser.find_element(By.ID, "hint").is_displayed()
        blank = browser.execute_script(
            "const d = document.getElementById('canvas').getContext('2d').getImageData(0, 0, 280, 280).data;"
            "return Math.max(...d.filter((_, i) => i % 4 === 0));")
        assert blank == 0


def test_dvc_plots_page_draws_every_plot_with_no_network(browser, mnist_run, tmp_path):
    """`dvc plots show` with the template set-up made (lifecycle/plots_page.py): vega,
    vega-lite and vega-embed are inside the page, so its three vega plots are drawn
    from a file:// page that loads nothing from anywhere."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from harness.real_parts import copy_repo, dvc
    from lifecycle.plots_page import ROOT

    page_template = REPO / ROOT / "plots-template.html"
    assert page_template.exists(), "set-up (make setup) installs vega with npm and writes the page template"
    repo = copy_repo(tmp_path / "repo")
    shutil.copytree(mnist_run.dir, repo / "outputs")
    dvc(repo, "commit", "-f", "plot")  # the copied plots folder into this repo's cache, as a run leaves it
    dvc(repo, "plots", "show", "--html-template", str(page_template), "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "<script src=" not in html and "cdn.jsdelivr" not in html  # nothing to fetch
    browser.get((tmp_path / "plots" / "index.html").as_uri())
    drawn = WebDriverWait(browser, 30).until(lambda b: b.execute_script("""
        const canvases = [...document.querySelectorAll('.vega-embed canvas')];
        if (canvases.length < 3) return null;
        return canvases.map(c => {  // how many pixels are not blank
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let ink = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && data[i] < 250) ink++;
            return ink;
        });"""))
    assert len(drawn) >= 3 and min(drawn) > 500, drawn  # accuracy, loss and the confusion matrix, each drawn
    assert browser.find_elements(By.CSS_SELECTOR, "img")  # and the PNG plots beside them
