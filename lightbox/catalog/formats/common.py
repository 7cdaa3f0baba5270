"""What every platform adapter shares: the records and notes it returns, and the cell-level helpers
(HTML stripping, spreadsheet-mangled numbers, category paths)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Literal



LAYOUTS = ("lightbox", "shopify", "woocommerce", "google-merchant")
NoteKind = Literal["skipped", "invalid", "warning"]


@dataclass
class Note:
    """One line of the quarantine report: which row, which column, what happened."""

    row: int
    sku: str
    column: str
    reason: str
    kind: NoteKind

    def as_dict(self) -> dict:
        return {"row": self.row, "sku": self.sku, "column": self.column, "reason": self.reason, "kind": self.kind}


@dataclass
class Listing:
    """A product's published gallery, for a platform's import file: its photos' public URLs in order
    (the main image first) with their alt texts."""

    sku: str
    title: str
    handle: str
    images: list[tuple[str, str]]  # (public URL, alt text)
    main_source: str = ""  # the catalog's reference of the main photo (variants sharing it share a gallery)
    row: int = 0  # the product's row in the catalog (a Shopify product's first variant is its first row)


@dataclass
class Record:
    """A product in the normalised layout, before it becomes a frame row."""

    row: int
    sku: str
    title: str
    category: str
    images: list[str]
    attributes: dict[str, str] = field(default_factory=dict)
    hero: str = ""
    priority: str = ""


@dataclass
class Adapted:
    layout: str
    records: list[Record]
    notes: list[Note]
    columns: dict[str, str]  # normalised field -> the export's column, for reasons that name the column


def detect_layout(columns: list[str]) -> str:
    """The layout a header belongs to (``lightbox`` when no platform export matches)."""
    cols = {c.strip() for c in columns}
    lower = {c.lower() for c in cols}
    if "Handle" in cols and ("Variant SKU" in cols or "Image Src" in cols):
        return "shopify"
    if "URL handle" in cols and ("SKU" in cols or "Product image URL" in cols):
        return "shopify"
    if {"ID", "Type", "SKU", "Name", "Images"} <= cols:
        return "woocommerce"
    if {"id", "image_link"} <= {c.removeprefix("g:") for c in lower}:
        return "google-merchant"
    return "lightbox"  # the native reader names the columns it misses


# --- helpers the adapters share -----------------------------------------------------------------------
_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"</?(?:p|div|br|li|ul|ol|h[1-6]|tr|td|th|table|section|article)\b[^>]*>", re.I)
_SCIENTIFIC = re.compile(r"^\s*\d(?:[.,]\d+)?[eE][+]?\d+\s*$")
_CATEGORY_SPLIT = re.compile(r"\s*[>›]\s*")  # not "/": "Tops/T-shirts" is one category name


def strip_html(text: str) -> tuple[str, bool]:
    """Plain text of an HTML fragment, and whether there was markup to remove."""
    if "<" not in text and "&" not in text:
        return text.strip(), False
    plain = html.unescape(_TAG.sub("", _BLOCK.sub(" ", text)))
    plain = re.sub(r"\s+", " ", plain).strip()
    return plain, plain != text.strip()


def looks_scientific(value: str) -> bool:
    """A number a spreadsheet rewrote in scientific notation (3.65275E+11): its digits are lost."""
    return bool(_SCIENTIFIC.match(value or ""))


def category_leaf(path: str) -> str:
    """'Home & Garden > Kitchen > Cookware' -> 'cookware' (the spec's categories are lower-case leaves)."""
    parts = [p for p in _CATEGORY_SPLIT.split(path.strip()) if p]
    return parts[-1].strip().lower() if parts else ""


def attr_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_")


def cell(row: dict, column: str | None) -> str:
    if column is None:
        return ""
    v = row.get(column, "")
    return "" if v is None else str(v).strip()


def text_warnings(row: int, sku: str, checks: list[tuple[str, str, str]], notes: list[Note]) -> dict[str, str]:
    """Shared data-quality checks. ``checks``: (attribute, column, raw value). Returns cleaned attributes:
    HTML is stripped (and reported), scientific-notation numbers are kept as written (and reported)."""
    out: dict[str, str] = {}
    for name, column, value in checks:
        if not value:
            continue
        if name in ("description", "short_description"):
            plain, had_html = strip_html(value)
            if had_html:
                notes.append(Note(row, sku, column, "HTML markup removed from the description for prompts and alt text",
                                  "warning"))
            out[name] = plain
            continue
        if name in ("barcode", "gtin") and looks_scientific(value):
            notes.append(Note(row, sku, column, f"barcode {value!r} was turned into scientific notation by a "
                              "spreadsheet; its digits are lost (re-export as text)", "warning"))
        out[name] = value
    return out
