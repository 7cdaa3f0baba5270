"""Google Merchant Center feeds: tab-separated text and RSS 2.0 / Atom XML with the ``g:`` namespace.

Every item is a product record (``id`` is the SKU); variants of one ``item_group_id`` each carry their
own ``image_link``, so each is rendered. Images: ``image_link`` then each ``additional_image_link``
(comma-separated in TSV, repeated elements in XML). ``lifestyle_image_link`` is kept as an attribute
but never used as a source: a scene photo is not a product shot to cut out. Category: the leaf of
``product_type``, else of ``google_product_category`` (lower-cased). Attributes: brand, color, material,
pattern, size, gender, age_group, item_group_id, gtin, mpn, condition, availability, description, link.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd

from lightbox.catalog.formats.common import Adapted, Listing, Note, Record, category_leaf, cell, looks_scientific, text_warnings
from lightbox.errors import CatalogError

G_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
ATTRIBUTES = ("brand", "color", "material", "pattern", "size", "gender", "age_group", "item_group_id", "mpn",
              "condition", "availability", "link", "lifestyle_image_link")


def parse_xml(data: bytes, uri: str) -> pd.DataFrame:
    """RSS 2.0 ``<item>`` or Atom ``<entry>`` elements -> one text row each; repeated fields joined by ','.
    DTDs are refused outright (no entity expansion of any kind)."""
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise CatalogError(f"{uri}: XML with a DTD or entities is not accepted")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise CatalogError(f"{uri}: invalid XML ({e})") from None
    items = root.findall("./channel/item") or root.findall(f"{{{ATOM_NS}}}entry") or root.findall(".//item")
    if not items:
        raise CatalogError(f"{uri}: no <item> (RSS) or <entry> (Atom) elements in the feed")
    rows = []
    for item in items:
        row: dict[str, str] = {}
        for el in item:
            tag = el.tag.split("}", 1)[-1]
            if el.tag == f"{{{ATOM_NS}}}link":
                text = el.get("href", "")
            else:
                text = (el.text or "").strip()
            if tag == "shipping" or len(el):  # nested groups (shipping, tax) are not image-related
                continue
            row[tag] = f"{row[tag]},{text}" if tag in row and text else (text or row.get(tag, ""))
        rows.append(row)
    return pd.DataFrame(rows, dtype=object).fillna("")


def adapt_merchant(raw: pd.DataFrame, uri: str) -> Adapted:
    raw = raw.rename(columns={c: str(c).strip().lower().removeprefix("g:") for c in raw.columns})
    notes: list[Note] = []
    records: list[Record] = []
    for i, r in enumerate(raw.to_dict(orient="records"), start=1):
        sku = cell(r, "id")
        if not sku:
            notes.append(Note(i, "", "id", "item without an id", "invalid"))
            continue
        if looks_scientific(sku):
            notes.append(Note(i, sku, "id", f"id {sku!r} was turned into scientific notation by a spreadsheet", "invalid"))
            continue
        images = [cell(r, "image_link")] if cell(r, "image_link") else []
        images += [u.strip() for u in cell(r, "additional_image_link").split(",") if u.strip()]
        path = cell(r, "product_type") or cell(r, "google_product_category")
        attrs = text_warnings(i, sku, [("description", "description", cell(r, "description")),
                                       ("gtin", "gtin", cell(r, "gtin"))], notes)
        attrs.update({k: cell(r, k) for k in ATTRIBUTES if cell(r, k)})
        if path:
            attrs["category_path"] = path
        records.append(Record(row=i, sku=sku, title=cell(r, "title"), category=category_leaf(path),
                              images=list(dict.fromkeys(images)), attributes=attrs))
    return Adapted("google-merchant", records, notes,
                   {"sku": "id", "title": "title", "category": "product_type", "images": "image_link"})


def export_tsv(listings: list[Listing]) -> str:
    """A Google Merchant Center supplemental feed (TSV): ``id``, ``image_link`` (the main image) and
    ``additional_image_link`` (the rest, comma-separated; Merchant Center takes up to 10). Add it to the
    primary feed as a supplemental source: only the image attributes change."""
    lines = ["id\timage_link\tadditional_image_link"]
    for item in listings:
        urls = [url for url, _ in item.images]
        for value, bad in ((item.sku, "\t\r\n"), *((u, "\t\r\n,") for u in urls)):
            if any(c in value for c in bad):  # public URLs are percent-encoded: never met in practice
                raise ValueError(f"{item.sku}: {value!r} cannot be written to a TSV feed")
        lines.append(f"{item.sku}\t{urls[0]}\t{','.join(urls[1:11])}")
    return "\n".join(lines) + "\n"
