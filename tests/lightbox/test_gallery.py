"""The review gallery in a real browser: Debian's chromium + chromedriver, headless, via Selenium
(never downloads a browser). Skips only where chromium is not installed; .ci/run installs it."""

import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lightbox.pipeline import run_plain
from tests.conftest import ACME
from tests.support.helpers import add_thumbnail, animated_gif, make_catalog

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")]


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
    """A catalog with two good products, one whose photo is missing (fails to render) and one thumbnail-sized
    photo (fails upscale-limit), run, and its output root served on 127.0.0.1."""
    catalog = make_catalog(tmp_path / "cat", bad={"BROKEN": animated_gif()}, n_good=2)  # BROKEN: refused when decoded
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
    """Every output of the run is on the page: render failures with their reason, the outputs to review, and a
    contact sheet of what went live; filters by state, channel and rule."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    summary, url = served
    assert summary.to_review == 3  # the thumbnail fails on all three channels
    browser.get(url)
    cards = browser.find_elements(By.CSS_SELECTOR, ".card")
    visible = lambda: [c for c in browser.find_elements(By.CSS_SELECTOR, ".card") if c.is_displayed()]  # noqa: E731
    sku = lambda card: card.find_element(By.TAG_NAME, "h3").text.split()[0]  # noqa: E731
    assert len(cards) == 12 and browser.find_element(By.ID, "count").text == "12"  # 3 failed, 3 to review, 6 live
    by_state = {st: [c for c in cards if c.get_attribute("data-state") == st] for st in ("failed", "review", "live")}
    assert {st: len(cs) for st, cs in by_state.items()} == {"failed": 3, "review": 3, "live": 6}
    # every thumbnail decoded by the browser (naturalWidth > 0), not a broken image; render failures have none
    # (the thumbnails load lazily: each is scrolled into view, and the wait for them is bounded)
    browser.execute_script("document.querySelectorAll('.card > img').forEach(i => i.scrollIntoView())")
    widths_js = "return [...document.querySelectorAll('.card > img')].map(i => i.complete ? i.naturalWidth : 0)"
    WebDriverWait(browser, 15).until(lambda d: all(w > 0 for w in d.execute_script(widths_js)))
    widths = browser.execute_script(widths_js)
    assert len(widths) == 9 and all(w > 0 for w in widths)
    assert all("BROKEN" in c.text and "animated image with 2 frames" in c.text and "failed to render" in c.text for c in by_state["failed"])
    review = by_state["review"]
    assert {c.get_attribute("data-channel") for c in review} == {"amazon_main", "shopify_square", "google_merchant"}
    assert all("THUMB-1" in c.text and "upscale-limit" in c.text for c in review)
    assert {sku(c) for c in by_state["live"]} == {"GOOD-0", "GOOD-1"}

    Select(browser.find_element(By.ID, "state")).select_by_value("review")
    assert len(visible()) == 3 and browser.find_element(By.ID, "count").text == "3"
    Select(browser.find_element(By.ID, "state")).select_by_value("failed")
    assert {sku(c) for c in visible()} == {"BROKEN"}
    Select(browser.find_element(By.ID, "state")).select_by_value("")
    Select(browser.find_element(By.ID, "channel")).select_by_value("amazon_main")
    assert {c.get_attribute("data-channel") for c in visible()} == {"amazon_main"} and len(visible()) == 4
    Select(browser.find_element(By.ID, "channel")).select_by_value("")
    Select(browser.find_element(By.ID, "rule")).select_by_value("upscale-limit")
    shown = visible()
    assert len(shown) == 3 and browser.find_element(By.ID, "count").text == "3"
    plots = browser.find_elements(By.CSS_SELECTOR, "figure.plot svg rect")
    assert len(plots) >= 20  # histogram bars were drawn
    assert "Catalog consistency" in browser.find_element(By.ID, "consistency").text

    # beside each output to review (and each render failure), its source photo; over it, the rectangle that was
    # cut out. Local photos load where the gallery is opened from disk (a browser keeps file:// from http pages)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card[data-state=review] figure.source .cutbox")) == 3
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card[data-state=failed] figure.source")) == 3
    assert not browser.find_elements(By.CSS_SELECTOR, ".card[data-state=live] figure.source")
    browser.get("file://" + summary.review_uri)
    browser.execute_script("document.querySelectorAll('.source img').forEach(i => i.scrollIntoView())")
    src_js = "return [...document.querySelectorAll('.card[data-state=review] .source img')].map(i => i.complete ? i.naturalWidth : 0)"
    WebDriverWait(browser, 15).until(lambda d: all(w > 0 for w in d.execute_script(src_js)))
    assert browser.execute_script(src_js) == [120, 120, 120]  # the thumbnail's own photo, 120 px wide
    geometry = browser.execute_script(
        "const f = document.querySelector('.card[data-state=review] .source .frame'), b = f.querySelector('.cutbox');"
        "const i = f.querySelector('img').getBoundingClientRect(), r = b.getBoundingClientRect();"
        "return [i.left, i.top, i.width, i.height, r.left, r.top, r.width, r.height];")
    il, it, iw, ih, bl, bt, bw, bh = geometry
    records = Path(summary.review_uri).parents[2] / "_review" / summary.run_id / "records.jsonl"
    placement = json.loads(records.read_text().splitlines()[0])["placement"]
    (x0, y0, x1, y1), (w, h) = placement["source_box"], placement["source_size"]
    assert (w, h) == (120, 160) and 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    # drawn where the record says, within a pixel of the photo's own scale
    assert abs((bl - il) / iw * w - x0) < 1.5 and abs((bt - it) / ih * h - y0) < 1.5
    assert abs(bw / iw * w - (x1 - x0)) < 1.5 and abs(bh / ih * h - (y1 - y0)) < 1.5


def test_a_run_whose_every_output_failed_to_render_does_not_say_nothing_to_review(tmp_path):
    """It used to read "Nothing to review: every output passed"."""
    from lightbox.quality.gallery import build_gallery
    from lightbox.records import Output
    from lightbox.storage import Store

    outputs = [Output(sku=f"S-{i}", row=i + 1, category="mugs", channel=ch, variant=0, state="failed", seed=0, engine="studio",
                      error="source image not found: img/s.jpg") for i in range(2) for ch in ("amazon_main", "shopify_square")]
    page = build_gallery(outputs, Store(str(tmp_path)), "t")
    assert "Nothing" not in page and "every output passed" not in page
    assert page.count('data-state="failed"') == 4 and "4 failed to render, 0 to review, 0 live" in page
    assert page.count("source image not found: img/s.jpg") == 4
