"""Each export format end to end through ``lightbox run``: the export written by the test, its images
served over HTTP by a server on 127.0.0.1 that the fetch policy allows explicitly, rendered, checked,
published; skipped and invalid rows in the quarantine report with row, column and reason. A second
run of the same export revalidates by ETag and downloads no image bytes."""

from __future__ import annotations

import csv
import json

import pytest

from flows.cli import main
from lightbox.catalog.ingest import read_catalog
from tests.support import exports
from tests.conftest import ACME
from tests.support.http_server import ImageServer
from tests.support.images import studio_photo, to_bytes

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

CASES = {
    "shopify-classic": (lambda p, img: exports.write_shopify(p / "products_export.csv", img, "classic"),
                        {"MUG-RED", "MUG-WHT", "MUG-NVY", "APRON-1", "BOWL-WHT"},
                        {(6, "Variant SKU"), (7, "Status"), (8, "Gift Card")}),
    "shopify-2024": (lambda p, img: exports.write_shopify(p / "products_export_1.csv", img, "2024"),
                     {"MUG-RED", "MUG-WHT", "MUG-NVY", "APRON-1", "BOWL-WHT"},
                     {(6, "SKU"), (7, "Status"), (8, "Gift card")}),
    "woocommerce": (lambda p, img: exports.write_woocommerce(p / "wc-product-export.csv", img),
                    {"VASE-1", "CANDLE-RED", "CANDLE-WHT", "LAMP-EXT", "KETTLE-1"},
                    {(2, "Type"), (5, "Type"), (6, "Images"), (8, "SKU"), (9, "Parent")}),
    "merchant-tsv": (lambda p, img: exports.write_gmc_tsv(p / "feed.tsv", img),
                     {"TEAPOT-BLK", "TEAPOT-RED", "BOARD-1"}, {(4, "id")}),
    "merchant-xml": (lambda p, img: exports.write_gmc_xml(p / "feed.xml", img),
                     {"TEAPOT-BLK", "TEAPOT-RED", "BOARD-1"}, {(4, "id")}),
}


@pytest.fixture(scope="module")
def image_server():
    with ImageServer() as server:
        for i, name in enumerate(exports.IMAGE_NAMES):
            server.add(f"/files/{name}", body=to_bytes(studio_photo(800, 1000, seed=i)[0], "JPEG", quality=90))
        yield server


def _brand(tmp_path) -> str:
    """acme-home, with room for the invalid rows these small exports carry on purpose (2 of 7 for WooCommerce)."""
    text = open(ACME).read()
    assert "max_invalid_share: 0.25" in text
    path = tmp_path / "acme-home.yaml"
    path.write_text(text.replace("max_invalid_share: 0.25", "max_invalid_share: 0.5"))
    return str(path)


def _policy(tmp_path) -> str:
    path = tmp_path / "fetch-policy.yaml"
    path.write_text("schemes: [https, http]\nallow_hosts: ['127.0.0.1']\nallow_networks: ['127.0.0.1/32']\n"
                    f"cache_dir: {tmp_path / 'cache'}\nmax_bytes: 5000000\nread_timeout_s: 10\n")
    return str(path)


@pytest.mark.parametrize("case", list(CASES))
def test_export_runs_end_to_end_over_http(case, tmp_path, image_server, capsys):
    write, skus, noted = CASES[case]
    catalog = write(tmp_path, lambda name: image_server.url(f"/files/{name}"))
    out = tmp_path / "out"
    args = ["run", str(catalog), "--brand", _brand(tmp_path), "--out", str(out), "--fetch-policy", _policy(tmp_path), "--chunk-size", "2"]
    assert main(args) == 0, capsys.readouterr().err
    published = {p.parent.name for p in (out / "acme-home").glob("*/amazon_main.jpg")}
    assert published == skus
    # every photo of each product's gallery, in order, on every channel (the mug's variants share two photos,
    # the vase and the teapot have a second one)
    galleries = {r["sku"]: r["images"].split("|") for r in read_catalog(str(catalog)).to_dict("records") if r["sku"] in skus}
    assert any(len(g) > 1 for g in galleries.values())
    for sku, images in galleries.items():
        for ch in ("amazon_main", "shopify_square", "google_merchant"):
            names = sorted(p.name for p in (out / "acme-home" / sku).glob(f"{ch}*.jpg"))
            assert names == sorted([f"{ch}.jpg"] + [f"{ch}-{k}.jpg" for k in range(2, len(images) + 1)]), (sku, ch)
    # delivered back: the platform's own import file of what went live reads back to the same products and galleries
    layout = {"shopify-classic": "shopify", "shopify-2024": "shopify", "woocommerce": "woocommerce"}.get(case, "google-merchant")
    to = tmp_path / ("import.tsv" if layout == "google-merchant" else "import.csv")
    assert main(["export", "acme-home", "--out", str(out), "--format", layout, "--channel", "shopify_square",
                 "--base-url", "https://cdn.example.com/shop", "--to", str(to)]) == 0
    back = {r["sku"]: r["images"].split("|") for r in read_catalog(str(to), layout=layout).to_dict("records")}
    assert {sku: len(g) for sku, g in back.items()} == {sku: len(g) for sku, g in galleries.items()}
    # (Shopify variants sharing their product's photos share its gallery: the URLs of one of them)
    assert all(u.startswith("https://cdn.example.com/shop/acme-home/") and "/shopify_square" in u for g in back.values() for u in g)
    summary = json.loads((out / "acme-home" / "latest-run.json").read_text())
    run_dir = out / "acme-home" / "_runs" / summary["run_id"]
    with open(run_dir / "quarantine.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(int(r["row"]), r["column"]) for r in rows if r["status"] != "warning"} == noted
    assert all(r["reason"] for r in rows) and {r["status"] for r in rows} <= {"invalid", "skipped", "warning"}

    if case != "shopify-classic":
        return
    # the same export again: every image revalidated by ETag (304), no image bytes downloaded, nothing rewritten
    before = len(image_server.seen)
    assert main(args) == 0
    again = image_server.seen[before:]
    assert again and {s.status for s in again} == {304} and sum(s.body_bytes for s in again) == 0
    assert "0 generated" in capsys.readouterr().out
