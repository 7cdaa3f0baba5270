"""The review gallery in a real browser: Debian's chromium + chromedriver, headless, via Selenium
(never downloads a browser). Skips only where chromium is not installed; .ci/run installs it."""

import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lightbox.pipeline import run_plain
from tests.conftest import ACME
from tests.lightbox.test_pipeline import add_thumbnail, make_catalog

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def served(tmp_path):
    """A catalog with two good products and one thumbnail-sized photo (fails upscale-limit), run,
    and its output root served on 127.0.0.1."""
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    add_thumbnail(catalog)
    out = tmp_path / "out"
    summary = run_plain(str(catalog), ACME, str(out))
    handler = partial(SimpleHTTPRequestHandler, directory=str(out))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rel = summary.review_uri[len(str(out)) + 1 :]
        yield summary, f"http://127.0.0.1:{server.server_address[1]}/{rel}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_review_page_loads_filters_and_shows_images(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    summary, url = served
    assert summary.to_review == 3  # the thumbnail fails on all three channels
    browser.get(url)
    cards = browser.find_elements(By.CSS_SELECTOR, ".card")
    visible = lambda: [c for c in browser.find_elements(By.CSS_SELECTOR, ".card") if c.is_displayed()]  # noqa: E731
    assert len(cards) >= 3 and browser.find_element(By.ID, "count").text == str(len(cards))
    # every thumbnail decoded by the browser (naturalWidth > 0), not a broken image
    widths = browser.execute_script("return [...document.querySelectorAll('.card img')].map(i => i.naturalWidth)")
    assert all(w > 0 for w in widths)
    failed = [c for c in cards if "failed" in c.get_attribute("class")]
    assert {c.get_attribute("data-channel") for c in failed} == {"amazon_main", "shopify_square", "google_merchant"}
    assert all("THUMB-1" in c.text and "upscale-limit" in c.text for c in failed)

    Select(browser.find_element(By.ID, "channel")).select_by_value("amazon_main")
    assert {c.get_attribute("data-channel") for c in visible()} == {"amazon_main"}
    Select(browser.find_element(By.ID, "channel")).select_by_value("")
    Select(browser.find_element(By.ID, "rule")).select_by_value("upscale-limit")
    shown = visible()
    assert len(shown) == 3 and browser.find_element(By.ID, "count").text == "3"
    plots = browser.find_elements(By.CSS_SELECTOR, "figure.plot svg rect")
    assert len(plots) >= 20  # histogram bars were drawn
    assert "Catalog consistency" in browser.find_element(By.ID, "consistency").text
