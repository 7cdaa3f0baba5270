"""Shopify product CSV (Products > Export), classic and 2024+ headers.

Rows are grouped by handle. The first row of a handle carries the product fields (title, description,
vendor, type, tags, status); every row that has an option value or a SKU is a variant; rows with only an
image URL add product images.

Mapping (documented in docs/formats.md):

- one product record per **variant**, ``sku`` = the variant's SKU. A variant row without a SKU is
  invalid (Shopify does not require SKUs; Lightbox names outputs by them);
- images: the variant's own image when it has one, else the product's images ordered by image
  position (ties by row order);
- category: the product type, else the leaf of the product category (lower-cased);
- attributes: each option (``Color: Navy`` -> ``color = Navy``), each metafield column by its label
  (``Material (product.metafields.shopify.material)`` -> ``material``; variant metafields from the
  variant's row, product ones from the first row), vendor -> ``brand``, ``type``, ``tags``,
  ``category_path``, ``description`` (HTML removed, reported), ``barcode``, ``handle``, ``image_alt``;
- skipped with a reason: archived products and gift cards. Drafts are rendered (images are usually
  made before a product goes live). A tag ``lightbox:hero`` marks a hero product.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter

import pandas as pd

from lightbox.catalog.formats.common import Adapted, Listing, Note, Record, attr_name, category_leaf, cell, looks_scientific, text_warnings

# canonical field -> (classic header, 2024+ header)
HEADERS = {
    "handle": ("Handle", "URL handle"),
    "title": ("Title", "Title"),
    "body": ("Body (HTML)", "Description"),
    "vendor": ("Vendor", "Vendor"),
    "product_category": ("Product Category", "Product category"),
    "type": ("Type", "Type"),
    "tags": ("Tags", "Tags"),
    "status": ("Status", "Status"),
    "sku": ("Variant SKU", "SKU"),
    "barcode": ("Variant Barcode", "Barcode"),
    "image_src": ("Image Src", "Product image URL"),
    "image_position": ("Image Position", "Image position"),
    "image_alt": ("Image Alt Text", "Image alt text"),
    "variant_image": ("Variant Image", "Variant image URL"),
    "gift_card": ("Gift Card", "Gift card"),
}
for _n in (1, 2, 3):
    HEADERS[f"option{_n}_name"] = (f"Option{_n} Name", f"Option{_n} name")
    HEADERS[f"option{_n}_value"] = (f"Option{_n} Value", f"Option{_n} value")


_METAFIELD = re.compile(r"^(?P<label>.+?)\s*\((?P<owner>product|variant)\.metafields\.[^)]+\)$")


def _metafields(columns: list[str]) -> list[tuple[str, str, str]]:
    """(column, attribute name, owner) for every metafield column of the export."""
    out = []
    for col in columns:
        m = _METAFIELD.match(str(col).strip())
        if m:
            out.append((col, attr_name(m["label"]), m["owner"]))
    return out


def _columns(raw: pd.DataFrame) -> dict[str, str | None]:
    cols = set(raw.columns)
    dialect = 0 if "Handle" in cols else 1
    return {k: (v[dialect] if v[dialect] in cols else None) for k, v in HEADERS.items()}


def adapt_shopify(raw: pd.DataFrame, uri: str) -> Adapted:
    c = _columns(raw)
    metafields = _metafields(list(raw.columns))
    notes: list[Note] = []
    records: list[Record] = []
    groups: dict[str, list[tuple[int, dict]]] = {}
    for i, r in enumerate(raw.to_dict(orient="records"), start=1):
        handle = cell(r, c["handle"])
        if not handle:
            notes.append(Note(i, "", c["handle"] or "Handle", "row has no handle; cannot tell which product it belongs to",
                              "invalid"))
            continue
        groups.setdefault(handle, []).append((i, r))

    for handle, rows in groups.items():
        head_row, head = rows[0]
        title = cell(head, c["title"])
        status = cell(head, c["status"]).lower()
        tags = [t.strip() for t in cell(head, c["tags"]).split(",") if t.strip()]
        variants = [(i, r) for i, r in rows if cell(r, c["option1_value"]) or cell(r, c["sku"])]
        if not variants:  # a product exported without variant columns still is one product
            variants = [rows[0]]

        images: list[tuple[float, int, str, str]] = []
        for i, r in rows:
            src = cell(r, c["image_src"])
            if not src:
                continue
            pos_text = cell(r, c["image_position"])
            try:
                pos = float(pos_text) if pos_text else float("inf")
            except ValueError:
                notes.append(Note(i, "", c["image_position"] or "", f"image position {pos_text!r} is not a number; "
                                  "ordered by row", "warning"))
                pos = float("inf")
            images.append((pos, i, src, cell(r, c["image_alt"])))
        images.sort(key=lambda t: (t[0], t[1]))
        product_images = list(dict.fromkeys(src for _, _, src, _ in images))
        first_alt = next((alt for *_, alt in images if alt), "")

        skip = None
        if status == "archived":
            skip = (c["status"] or "Status", "archived product (not sold any more)")
        elif cell(head, c["gift_card"]).lower() == "true":
            skip = (c["gift_card"] or "Gift Card", "gift card (no product to photograph)")

        category_path = cell(head, c["product_category"])
        ptype = cell(head, c["type"])
        category = ptype.lower() if ptype else category_leaf(category_path)
        option_names = [cell(head, c[f"option{n}_name"]) for n in (1, 2, 3)]

        described: dict[str, str] | None = None  # product-level text, checked (and reported) once
        for i, r in variants:
            sku = cell(r, c["sku"])
            if skip:
                notes.append(Note(i, sku, skip[0], skip[1], "skipped"))
                continue
            if not sku:
                notes.append(Note(i, "", c["sku"] or "Variant SKU",
                                  f"empty SKU on a variant row of handle {handle!r} (set a SKU in Shopify)", "invalid"))
                continue
            if looks_scientific(sku):
                notes.append(Note(i, sku, c["sku"] or "Variant SKU",
                                  f"SKU {sku!r} was turned into scientific notation by a spreadsheet", "invalid"))
                continue
            if described is None:
                described = text_warnings(i, sku, [("description", c["body"] or "", cell(head, c["body"]))], notes)
            attrs = {**described, **text_warnings(i, sku, [("barcode", c["barcode"] or "", cell(r, c["barcode"]))], notes)}
            for col, name, owner in metafields:
                value = cell(r if owner == "variant" else head, col)
                if value:
                    attrs[name] = value
            for n, name in enumerate(option_names, start=1):
                value = cell(r, c[f"option{n}_value"])
                if name and value and not (name.lower() == "title" and value == "Default Title"):
                    attrs[name.strip().lower()] = value
            attrs.update({k: v for k, v in {
                "brand": cell(head, c["vendor"]), "type": ptype, "tags": ", ".join(tags),
                "category_path": category_path, "handle": handle, "image_alt": first_alt,
            }.items() if v})
            own = cell(r, c["variant_image"])
            records.append(Record(
                row=i, sku=sku, title=title, category=category,
                images=[own] if own else product_images, attributes=attrs,
                hero="true" if "lightbox:hero" in tags else "",
            ))

    columns = {"sku": c["sku"] or "Variant SKU", "title": c["title"] or "Title",
               "category": c["type"] or "Type", "images": c["image_src"] or "Image Src"}
    return Adapted("shopify", records, notes, columns)


EXPORT_COLUMNS = ["Handle", "Title", "Variant SKU", "Image Src", "Image Position", "Image Alt Text", "Variant Image"]


def export_csv(listings: list[Listing]) -> str:
    """A Shopify product CSV (classic header) that sets each product's images: import it with "Overwrite
    products with matching handles". Listings with the same handle are one product's variants: the product's
    images are the gallery of the first (by catalog row) of the variants sharing the most common main photo; a
    variant whose main photo differs gets it as its Variant Image
    (Shopify adds a variant image to the product's media itself).
    Columns not in the file keep their values in the shop."""
    by_handle: dict[str, list[Listing]] = {}
    for item in listings:
        by_handle.setdefault(item.handle or item.sku.lower(), []).append(item)
    buf = io.StringIO()
    w = csv.DictWriter(buf, EXPORT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for handle, variants in by_handle.items():
        # the product's gallery: that of the variants sharing the most common main photo (the product's own
        # images; a variant with a photo of its own is the exception, as in Shopify's export)
        variants = sorted(variants, key=lambda v: v.row)  # the shop's order: its first variant first
        shared = Counter(v.main_source for v in variants)
        first = max(variants, key=lambda v: (shared[v.main_source], len(v.images), -v.row))
        variants = [first, *(v for v in variants if v is not first)]
        rows = [{"Handle": handle, "Image Src": url, "Image Position": str(k), "Image Alt Text": alt}
                for k, (url, alt) in enumerate(first.images, start=1)]
        rows[0]["Title"] = first.title
        for i, v in enumerate(variants):
            own = v.images[0][0] if v.main_source != first.main_source else ""  # Shopify adds it to the product's media
            if i < len(rows):
                rows[i] |= {"Variant SKU": v.sku, "Variant Image": own}
            else:
                rows.append({"Handle": handle, "Variant SKU": v.sku, "Variant Image": own})
        w.writerows(rows)
    return buf.getvalue()
