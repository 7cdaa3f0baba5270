"""Shopify (classic and 2024+ headers), WooCommerce and Google Merchant (TSV and RSS XML) exports,
written by tests/support/exports.py, read into product records: variants, images, categories, attributes,
and every skipped or invalid row named by row, column and reason; data-quality problems reported."""

from __future__ import annotations

import pandas as pd
import pytest

from lightbox.catalog.formats import category_leaf, detect_layout, looks_scientific, strip_html
from lightbox.catalog.ingest import read_catalog, to_products
from lightbox.catalog.validate import validate_catalog
from lightbox.errors import CatalogError
from lightbox.specs import load_brand_spec
from lightbox.specs.starter import starter_spec
from tests.support import exports
from tests.conftest import ACME


def img(name: str) -> str:
    return f"https://cdn.example.com/files/{name}"


def notes(frame: pd.DataFrame, kind: str) -> list[tuple[int, str, str]]:
    return [(n["row"], n["sku"], n["column"]) for n in frame.attrs["notes"] if n["kind"] == kind]


def by_sku(frame: pd.DataFrame) -> dict:
    return {p.sku: p for p in to_products(frame)}


@pytest.mark.parametrize("dialect", ["classic", "2024"])
def test_shopify_variants_images_and_problems(tmp_path, dialect):
    path = exports.write_shopify(tmp_path / "products_export.csv", img, dialect)
    frame = read_catalog(str(path))
    assert frame.attrs["layout"] == "shopify"
    p = by_sku(frame)
    assert list(p) == ["MUG-RED", "MUG-WHT", "MUG-NVY", "APRON-1", "BOWL-WHT"]
    # variants without their own image get the product's images by position; navy has its own
    assert p["MUG-RED"].images == [img("mug-red.jpg"), img("mug-white.jpg")] == p["MUG-WHT"].images
    assert p["MUG-NVY"].images == [img("mug-navy.jpg")]
    assert (p["MUG-NVY"].row, p["MUG-NVY"].title, p["MUG-NVY"].category) == (3, "Stoneware Mug", "kitchen")
    assert p["MUG-RED"].attributes["color"] == "red" and p["MUG-NVY"].attributes["color"] == "navy"
    assert p["MUG-RED"].attributes["description"] == "Hand-glazed stoneware."
    assert p["MUG-RED"].attributes["brand"] == "Acme"
    assert p["MUG-NVY"].attributes["material"] == "stoneware"  # product metafield column, by its label
    assert p["MUG-RED"].attributes["category_path"] == "Home & Garden > Kitchen & Dining > Drinkware"
    assert p["BOWL-WHT"].category == "tableware" and p["BOWL-WHT"].attributes["material"] == "stoneware"
    assert p["BOWL-WHT"].attributes["barcode"] == "3.65275E+11"  # kept as written, and reported
    sku_col = "Variant SKU" if dialect == "classic" else "SKU"
    gift_col = "Gift Card" if dialect == "classic" else "Gift card"
    assert notes(frame, "invalid") == [(6, "", sku_col)]
    assert notes(frame, "skipped") == [(7, "LAMP-OLD", "Status"), (8, "GIFT-25", gift_col)]
    body = "Body (HTML)" if dialect == "classic" else "Description"
    barcode = "Variant Barcode" if dialect == "classic" else "Barcode"
    assert notes(frame, "warning") == [(1, "MUG-RED", body), (5, "BOWL-WHT", barcode)]
    reasons = {n["row"]: n["reason"] for n in frame.attrs["notes"]}
    assert "empty SKU on a variant row of handle 'serving-bowl'" in reasons[6]
    assert "scientific notation" in reasons[5] and "archived" in reasons[7] and "gift card" in reasons[8]


def test_shopify_default_title_variant_and_unordered_images(tmp_path):
    rows = [
        {"Handle": "tray", "Title": "Tray", "Type": "Decor", "Option1 Name": "Title", "Option1 Value": "Default Title",
         "Variant SKU": "TRAY-1", "Image Src": img("b.jpg"), "Image Position": "2", "Status": "active"},
        {"Handle": "tray", "Image Src": img("a.jpg"), "Image Position": "1"},
        {"Handle": "tray", "Image Src": img("c.jpg"), "Image Position": "first"},
    ]
    path = exports._csv(tmp_path / "p.csv", exports.SHOPIFY_CLASSIC, rows)
    frame = read_catalog(str(path))
    (p,) = to_products(frame)
    assert p.images == [img("a.jpg"), img("b.jpg"), img("c.jpg")]
    assert "title" not in p.attributes  # the "Default Title" option is not an attribute
    assert notes(frame, "warning") == [(3, "", "Image Position")]


def test_woocommerce_product_types(tmp_path):
    frame = read_catalog(str(exports.write_woocommerce(tmp_path / "wc-product-export.csv", img)))
    assert frame.attrs["layout"] == "woocommerce"
    p = by_sku(frame)
    assert list(p) == ["VASE-1", "CANDLE-RED", "CANDLE-WHT", "LAMP-EXT", "KETTLE-1"]
    assert p["VASE-1"].images == [img("vase.jpg"), img("vase-side.jpg")]  # featured first
    assert p["VASE-1"].category == "decor" and p["VASE-1"].attributes["category_path"] == "Home > Decor"
    assert p["VASE-1"].attributes["short_description"] == "Mouth-blown glass"
    assert p["CANDLE-RED"].images == [img("candle-red.jpg")]
    assert p["CANDLE-WHT"].images == [img("candle.jpg")]  # no own image: the parent's
    assert p["CANDLE-WHT"].category == "decor"  # inherited from the parent
    assert p["CANDLE-WHT"].attributes["color"] == "white" and p["CANDLE-WHT"].attributes["material"] == "soy wax"
    assert p["CANDLE-WHT"].attributes["parent_sku"] == "CANDLE"
    assert p["LAMP-EXT"].category == "lighting"
    assert notes(frame, "skipped") == [(2, "CANDLE", "Type"), (5, "TABLE-SET", "Type"), (6, "VOUCHER", "Images")]
    assert notes(frame, "invalid") == [(8, "", "SKU"), (9, "ORPHAN-1", "Parent")]
    assert notes(frame, "warning") == [(1, "VASE-1", "Short description"), (10, "KETTLE-1", "GTIN, UPC, EAN, or ISBN")]
    reasons = {n["row"]: n["reason"] for n in frame.attrs["notes"]}
    assert reasons[2] == "variable product: rendered per variation (rows 3, 4, 8)"
    assert "grouped product" in reasons[5] and "virtual product without images" in reasons[6]
    assert "parent 'id:999' is not in the file" in reasons[9]


@pytest.mark.parametrize("writer, name", [(exports.write_gmc_tsv, "feed.tsv"), (exports.write_gmc_xml, "feed.xml")])
def test_google_merchant_feeds(tmp_path, writer, name):
    frame = read_catalog(str(writer(tmp_path / name, img)))
    assert frame.attrs["layout"] == "google-merchant"
    p = by_sku(frame)
    assert list(p) == ["TEAPOT-BLK", "TEAPOT-RED", "BOARD-1"]
    assert p["TEAPOT-BLK"].images == [img("teapot-black.jpg"), img("teapot-side.jpg")]  # lifestyle image not a source
    assert p["TEAPOT-BLK"].attributes["lifestyle_image_link"] == img("teapot-scene.jpg")
    assert p["TEAPOT-BLK"].attributes["item_group_id"] == "TEAPOT" == p["TEAPOT-RED"].attributes["item_group_id"]
    assert p["TEAPOT-BLK"].category == "kitchen" and p["TEAPOT-BLK"].attributes["material"] == "cast iron"
    assert p["BOARD-1"].attributes["description"] == "Solid oak & oil finish"
    assert notes(frame, "invalid") == [(4, "", "id")]
    assert notes(frame, "warning") == [(3, "BOARD-1", "description"), (3, "BOARD-1", "gtin")]


def test_validation_reports_rows_columns_and_skips(tmp_path):
    """Adapter notes and schema failures both reach the quarantine list with the export's column names."""
    rows = exports.shopify_rows(img)
    rows[3]["Type"] = "Garden"  # a category the brand spec does not know
    path = exports._csv(tmp_path / "p.csv", exports.SHOPIFY_CLASSIC, rows)
    result = validate_catalog(read_catalog(str(path)), load_brand_spec(ACME))
    quarantined = {(q.row, q.column): q.reason for q in result.quarantined}
    assert "category 'garden' is not in the brand spec" in quarantined[(4, "Type")]
    assert "empty SKU" in quarantined[(6, "Variant SKU")]
    assert [(q.row, q.column) for q in result.skipped] == [(7, "Status"), (8, "Gift Card")]
    assert {(w.row, w.column) for w in result.warnings} >= {(1, "Body (HTML)"), (5, "Variant Barcode")}
    assert result.total == 6 and len(result.valid) == 4  # skipped rows count neither for nor against


def test_layout_detection_and_errors(tmp_path):
    assert detect_layout(exports.SHOPIFY_CLASSIC) == detect_layout(exports.SHOPIFY_2024) == "shopify"
    assert detect_layout(exports.WOO_HEADER) == "woocommerce"
    assert detect_layout(exports.GMC_FIELDS) == "google-merchant"
    assert detect_layout(["sku", "title", "category", "image"]) == "lightbox"
    only_skipped = exports._csv(tmp_path / "gift.csv", exports.SHOPIFY_CLASSIC, exports.shopify_rows(img)[7:])
    with pytest.raises(CatalogError, match=r"no products in this shopify export \(1 skipped, 0 invalid; first: row 1, "
                                           r"Gift Card: gift card"):
        read_catalog(str(only_skipped))
    dtd = tmp_path / "feed.xml"
    dtd.write_text('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><rss><channel><item><g:id>&a;</g:id>'
                   "</item></channel></rss>")
    with pytest.raises(CatalogError, match="XML with a DTD or entities is not accepted"):
        read_catalog(str(dtd))
    broken = tmp_path / "broken.xml"
    broken.write_text("<rss><channel><item>")
    with pytest.raises(CatalogError, match=r"broken.xml: invalid XML"):
        read_catalog(str(broken))
    with pytest.raises(CatalogError, match="unknown layout 'magento'"):
        read_catalog(str(only_skipped), layout="magento")


def test_helpers():
    assert strip_html("<p>A &amp; B</p>\n<br/>C") == ("A & B C", True)
    assert strip_html("plain") == ("plain", False)
    assert looks_scientific("3.65275E+11") and looks_scientific("4e12") and not looks_scientific("0036000291452")
    assert category_leaf("Home & Garden > Kitchen & Dining > Drinkware") == "drinkware"
    assert category_leaf("Apparel > Tops/T-shirts") == "tops/t-shirts" and category_leaf("") == ""


def test_woocommerce_option_lists_are_no_product_value(tmp_path):
    """Issue 25, item 10: a variable parent's "Blue, Green, Red" is the list of its options. A variation left at
    "any size" does not inherit the list, a parent exported without its variations gets the attribute empty with a
    warning, and `lightbox init` builds the colour value set of single values."""
    rows = exports.woo_apparel_rows(img)
    rows[0]["Attribute 2 name"], rows[0]["Attribute 2 value(s)"] = "Size", "S, M, L"
    rows.append({"ID": "20", "Type": "variable", "SKU": "woo-polo", "Name": "Polo", "Published": "1",
                 "Categories": "Clothing > Tshirts", "Images": img("polo.jpg"), "Attribute 1 name": "Color",
                 "Attribute 1 value(s)": "Navy\\, dark, White"})
    path = exports._csv(tmp_path / "woo.csv", exports.WOO_HEADER, rows)
    frame = read_catalog(str(path))
    p = by_sku(frame)
    assert p["woo-vneck-tee-blue"].attributes["color"] == "Blue" and "size" not in p["woo-vneck-tee-blue"].attributes
    assert "color" not in p["woo-polo"].attributes
    reasons = {(n["sku"], n["column"]): n["reason"] for n in frame.attrs["notes"] if n["kind"] == "warning"}
    assert reasons[("woo-polo", "color")] == "attribute 'color' lists options (Navy, dark, White), not this product's own value: left empty"
    starter = starter_spec(frame, "woo", str(path))
    assert starter.value_sets["color"] == ["Black", "Blue", "Brown", "Green", "Grey", "Red", "Yellow"]
