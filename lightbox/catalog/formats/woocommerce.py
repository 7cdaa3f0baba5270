"""WooCommerce product CSV (Products > Export, the built-in exporter).

Treatment by product type (the ``Type`` column, e.g. ``simple``, ``variable``, ``variation``,
``grouped``, ``external``, plus ``virtual`` / ``downloadable`` flags in the same cell):

- ``simple`` and ``external``: one product record each (an external/affiliate product still has
  product photos);
- ``variation``: one record per variation, ``sku`` = its SKU; images: its own image, else the parent's
  images; category and attributes inherited from the parent, the variation's attribute values win.
  A variation whose parent is not in the file, or without a SKU, is invalid;
- ``variable``: the parent is skipped when its variations are in the file (they are rendered);
  a variable product exported without its variations is rendered as one product;
- attribute option lists (a variable product's ``Blue, Green, Red``) are not a value: a variation does not
  inherit them, and a product whose own cell lists several gets the attribute left empty, with a warning;
- ``grouped``: skipped (a container; its children are products of their own);
- ``virtual`` or ``downloadable`` without images: skipped (nothing to photograph); with images, rendered.

Images: the ``Images`` cell is a comma-separated list, the first is the featured image. Category: the
leaf of the first category (``Home > Kitchen, Sale`` -> ``kitchen``), the full path kept as
``category_path``.
"""

from __future__ import annotations

import csv
import io
import re

import pandas as pd

from lightbox.catalog.formats.common import Adapted, Listing, Note, Record, attr_name, category_leaf, cell, looks_scientific, text_warnings

GTIN_COLUMNS = ("GTIN, UPC, EAN, or ISBN", "GTIN, UPC, EAN or ISBN", "EAN", "Barcode")


def _images(value: str) -> list[str]:
    return [p.strip() for p in re.split(r",\s*(?=[a-zA-Z][a-zA-Z0-9+.-]*://|/)", value) if p.strip()] if value else []


def _first_category(value: str) -> str:
    """The first of the comma-separated categories (an escaped '\\,' stays inside one name)."""
    parts = re.split(r"(?<!\\),", value)
    return parts[0].replace("\\,", ",").strip() if parts else ""


def _attributes(row: dict, columns: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(the row's attribute values, the attributes that list options): WooCommerce writes a variable product's
    options as one comma-separated cell ("Blue, Green, Red"; a comma inside a value is escaped "\\,"), which is
    not one product's colour."""
    out, options = {}, {}
    n = 1
    while f"Attribute {n} name" in columns:
        name = cell(row, f"Attribute {n} name")
        value = cell(row, f"Attribute {n} value(s)")
        if name and value:
            values = [v.replace("\\,", ",").strip() for v in re.split(r"(?<!\\),", value)]
            if len([v for v in values if v]) > 1:
                options[attr_name(name)] = ", ".join(v for v in values if v)
            else:
                out[attr_name(name)] = values[0] if values else value
        n += 1
    return out, options


def adapt_woocommerce(raw: pd.DataFrame, uri: str) -> Adapted:
    columns = list(raw.columns)
    gtin_col = next((g for g in GTIN_COLUMNS if g in columns), None)
    notes: list[Note] = []
    records: list[Record] = []
    rows = list(enumerate(raw.to_dict(orient="records"), start=1))
    by_id = {cell(r, "ID"): (i, r) for i, r in rows if cell(r, "ID")}
    by_sku = {cell(r, "SKU"): (i, r) for i, r in rows if cell(r, "SKU")}

    def parent_of(r: dict) -> tuple[int, dict] | None:
        ref = cell(r, "Parent")
        if ref.startswith("id:"):
            return by_id.get(ref[3:].strip())
        return by_sku.get(ref) or by_id.get(ref)

    children: dict[int, list[int]] = {}
    for i, r in rows:
        if "variation" in _types(r):
            p = parent_of(r)
            if p is not None:
                children.setdefault(p[0], []).append(i)

    for i, r in rows:
        types = _types(r)
        sku = cell(r, "SKU")
        images = _images(cell(r, "Images"))
        if "grouped" in types:
            notes.append(Note(i, sku, "Type", "grouped product: a container; its children are rendered as products of "
                              "their own", "skipped"))
            continue
        if "variable" in types and i in children:
            rows_txt = ", ".join(map(str, children[i]))
            notes.append(Note(i, sku, "Type", f"variable product: rendered per variation (rows {rows_txt})", "skipped"))
            continue
        parent = None
        if "variation" in types:
            parent = parent_of(r)
            if parent is None:
                notes.append(Note(i, sku, "Parent", f"variation's parent {cell(r, 'Parent')!r} is not in the file",
                                  "invalid"))
                continue
        if not images and parent is not None:
            images = _images(cell(parent[1], "Images"))
        if not images and ({"virtual", "downloadable"} & types):
            kind = "virtual" if "virtual" in types else "downloadable"
            notes.append(Note(i, sku, "Images", f"{kind} product without images: nothing to photograph", "skipped"))
            continue
        if not sku:
            notes.append(Note(i, "", "SKU", f"empty SKU on a {'variation' if parent else 'product'} row "
                              f"(ID {cell(r, 'ID') or '?'}); set a SKU in WooCommerce", "invalid"))
            continue
        if looks_scientific(sku):
            notes.append(Note(i, sku, "SKU", f"SKU {sku!r} was turned into scientific notation by a spreadsheet", "invalid"))
            continue

        src = parent[1] if parent is not None else r
        cats = cell(src, "Categories")
        first = _first_category(cats)
        # a variation inherits its parent's single values, never its option lists (a variation left at "any
        # colour" is not every colour); a product's own option list is no value of its photo
        attrs = _attributes(parent[1], columns)[0] if parent is not None else {}
        own, options = _attributes(r, columns)
        attrs.update(own)
        for name, listed in options.items():
            if name not in attrs:
                notes.append(Note(i, sku, name, f"attribute {name!r} lists options ({listed}), not this product's own "
                                  "value: left empty", "warning"))
        checks = [("short_description", "Short description", cell(r, "Short description") or cell(src, "Short description")),
                  ("description", "Description", cell(r, "Description") or cell(src, "Description"))]
        if gtin_col:
            checks.append(("gtin", gtin_col, cell(r, gtin_col)))
        attrs.update(text_warnings(i, sku, checks, notes))
        tags = cell(src, "Tags")
        attrs.update({k: v for k, v in {"category_path": first, "tags": tags, "type": ", ".join(sorted(types)),
                                        "parent_sku": cell(parent[1], "SKU") if parent is not None else ""}.items() if v})
        records.append(Record(
            row=i, sku=sku, title=cell(r, "Name") or (cell(parent[1], "Name") if parent is not None else ""),
            category=category_leaf(first), images=images, attributes=attrs,
            hero="true" if "lightbox:hero" in [t.strip() for t in tags.split(",")] else "",
        ))
    return Adapted("woocommerce", records, notes, {"sku": "SKU", "title": "Name", "category": "Categories", "images": "Images"})


def _types(r: dict) -> set[str]:
    return {t.strip().lower() for t in cell(r, "Type").split(",") if t.strip()}


def export_csv(listings: list[Listing]) -> str:
    """A WooCommerce product CSV that sets each product's gallery (``Images``: the featured image first,
    comma-separated): import it with "Update existing products", matched by SKU. Only SKU and Images are
    written, so names, categories and types in the shop stay as they are (WooCommerce's CSV has no alt texts)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["SKU", "Images"])
    for item in listings:
        w.writerow([item.sku, ", ".join(url for url, _ in item.images)])
    return buf.getvalue()
