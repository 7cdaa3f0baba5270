"""Read a catalog (CSV, TSV, JSON Lines, Parquet or XML; local, file:// or s3://) into one normalised frame.

Platform exports (Shopify, WooCommerce, Google Merchant) are recognised by their header and mapped by
the adapters in :mod:`lightbox.catalog.formats`; what they skip or reject travels with the frame in
``frame.attrs["notes"]`` (row, column, reason) for the quarantine report.

The frame keeps every value as text, exactly as the source had it, so validation can report what was
wrong instead of a parser quietly coercing it ("00123" stays "00123", "yes" is not yet True).

Normalised columns: ``row`` (1-based data row), ``sku``, ``title``, ``category``, ``images``
(``|``-separated references, made absolute against the catalog's folder), ``priority``, ``hero``, and
one ``attr_<name>`` column per other source column (colour, material, size ...).
"""

from __future__ import annotations

import io
import json
import logging
import re

import pandas as pd

from lightbox.catalog.formats import LAYOUTS, Adapted, adapt, detect_layout
from lightbox.errors import CatalogError
from lightbox.records import Product
from lightbox.storage import read_bytes, resolve_relative

log = logging.getLogger(__name__)

REQUIRED = ("sku", "title", "category")
IMAGE_COLUMNS = ("image", "images", "image_url", "image_path")
OPTIONAL = ("priority", "hero")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
           ".pq": "parquet", ".xml": "xml", ".rss": "xml"}
_ATTR_NAME = re.compile(r"[^a-z0-9_]+")


def detect_format(uri: str) -> str:
    name = uri.lower().split("?")[0]
    for ext, fmt in FORMATS.items():
        if name.endswith(ext):
            return fmt
    raise CatalogError(f"{uri}: unknown catalog format (use .csv, .tsv/.txt, .jsonl/.ndjson, .parquet or .xml)")


def _parse(data: bytes, fmt: str, uri: str) -> pd.DataFrame:
    try:
        if fmt in ("csv", "tsv"):
            return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig",
                               sep="\t" if fmt == "tsv" else ",")
        if fmt == "xml":
            from lightbox.catalog.formats.merchant import parse_xml

            return parse_xml(data, uri)
        if fmt == "jsonl":
            rows = []
            for n, line in enumerate(data.decode("utf-8-sig").splitlines(), start=1):
                if not line.strip():
                    continue
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise CatalogError(f"{uri}: line {n}: expected a JSON object, got {type(obj).__name__}")
                attrs = obj.pop("attributes", None) or {}
                if not isinstance(attrs, dict):
                    raise CatalogError(f"{uri}: line {n}: 'attributes' must be an object")
                rows.append({**{k: _text(v) for k, v in obj.items()}, **{k: _text(v) for k, v in attrs.items()}})
            return pd.DataFrame(rows, dtype=object).fillna("")
        frame = pd.read_parquet(io.BytesIO(data))
        return frame.apply(lambda col: col.map(_text)).astype(object)
    except CatalogError:
        raise
    except UnicodeDecodeError as e:
        raise CatalogError(f"{uri}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise CatalogError(f"{uri}: invalid JSON on line {e.lineno}: {e.msg}") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CatalogError(f"{uri}: cannot parse as {fmt}: {first}") from None


def _text(v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, (list, tuple)):
        return "|".join(_text(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def read_catalog(uri: str, fmt: str | None = None, layout: str | None = None) -> pd.DataFrame:
    """Read and normalise a catalog. ``fmt``: the file format (default: from the extension);
    ``layout``: lightbox/shopify/woocommerce/google-merchant (default: from the header).
    Raises CatalogError naming the file and the problem."""
    fmt = fmt or detect_format(uri)
    if layout not in (None, "auto", *LAYOUTS):
        raise CatalogError(f"{uri}: unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
    try:
        data = read_bytes(uri)
    except FileNotFoundError as e:
        raise CatalogError(str(e)) from None
    except PermissionError as e:
        raise CatalogError(str(e) if str(e).startswith(uri) else f"{uri}: permission denied") from None
    except OSError as e:
        raise CatalogError(f"{uri}: cannot read ({e})") from None
    if not data.strip():
        raise CatalogError(f"{uri}: the catalog is empty")
    raw = _parse(data, fmt, uri)
    if layout in (None, "auto"):
        layout = "google-merchant" if fmt == "xml" else detect_layout([str(c) for c in raw.columns])
    if layout == "lightbox":
        frame = normalise(raw, uri)
        frame.attrs.update({"layout": "lightbox", "notes": [], "columns": {}})
        return frame
    try:
        adapted = adapt(layout, raw, uri)
    except KeyError as e:
        raise CatalogError(f"{uri}: not a {layout} export: column {e.args[0]!r} is missing") from None
    return records_frame(adapted, uri)


def records_frame(adapted: Adapted, uri: str) -> pd.DataFrame:
    """An adapter's records in the normalised layout; its notes and column names ride in ``attrs``."""
    counts = {k: sum(n.kind == k for n in adapted.notes) for k in ("skipped", "invalid", "warning")}
    if not adapted.records:
        first = next((n for n in adapted.notes if n.kind != "warning"), None)
        why = f"; first: row {first.row}, {first.column}: {first.reason}" if first else ""
        raise CatalogError(f"{uri}: no products in this {adapted.layout} export "
                           f"({counts['skipped']} skipped, {counts['invalid']} invalid{why})")
    rows = []
    for r in adapted.records:
        row = {"row": r.row, "sku": r.sku, "title": r.title, "category": r.category,
               "images": "|".join(resolve_relative(p, uri) for p in r.images if p),
               "priority": r.priority, "hero": r.hero}
        for k, v in r.attributes.items():
            name = _ATTR_NAME.sub("_", k.lower()).strip("_")
            if name:
                row[f"attr_{name}"] = v
        rows.append(row)
    frame = pd.DataFrame(rows, dtype=object).fillna("")
    frame["row"] = frame["row"].astype("int64")
    frame.attrs.update({"layout": adapted.layout, "notes": [n.as_dict() for n in adapted.notes],
                        "columns": adapted.columns})
    log.info("read %d products from %s (%s export; %d skipped, %d invalid, %d warnings)",
             len(frame), uri, adapted.layout, counts["skipped"], counts["invalid"], counts["warning"])
    return frame


def normalise(raw: pd.DataFrame, uri: str) -> pd.DataFrame:
    cols = {c: str(c).strip().lower() for c in raw.columns}
    raw = raw.rename(columns=cols)
    missing = [c for c in REQUIRED if c not in raw.columns]
    image_cols = [c for c in IMAGE_COLUMNS if c in raw.columns]
    if missing or not image_cols:
        need = missing + ([] if image_cols else ["image"])
        raise CatalogError(
            f"{uri}: unknown column layout: missing {', '.join(repr(c) for c in need)}; "
            f"found {', '.join(repr(c) for c in raw.columns) or 'no columns'} "
            "(Shopify, WooCommerce and Google Merchant exports are read as they are: docs/formats.md)"
        )
    if len(image_cols) > 1:
        raise CatalogError(f"{uri}: ambiguous image columns {image_cols!r}; keep one")
    if raw.empty:
        raise CatalogError(f"{uri}: the catalog has a header but no rows")

    out = pd.DataFrame(index=range(len(raw)))
    out["row"] = range(1, len(raw) + 1)
    for c in REQUIRED:
        out[c] = raw[c].astype(str).str.strip().to_numpy()
    images = raw[image_cols[0]].astype(str).map(
        lambda s: "|".join(resolve_relative(p.strip(), uri) for p in re.split(r"[|]", s) if p.strip())
    )
    out["images"] = images.to_numpy()
    for c in OPTIONAL:
        out[c] = raw[c].astype(str).str.strip().to_numpy() if c in raw.columns else ""
    for c in raw.columns:
        if c in REQUIRED or c in OPTIONAL or c == image_cols[0]:
            continue
        name = _ATTR_NAME.sub("_", c).strip("_")
        if not name:
            continue
        out[f"attr_{name}"] = raw[c].astype(str).str.strip().to_numpy()
    log.info("read %d rows from %s", len(out), uri)
    return out


_TRUE = {"true", "yes", "1", "y"}


def to_products(frame: pd.DataFrame) -> list[Product]:
    """Validated frame -> typed records (types are coerced only after validation said they parse)."""
    attr_cols = [c for c in frame.columns if c.startswith("attr_")]
    products = []
    for rec in frame.to_dict(orient="records"):
        products.append(
            Product(
                row=int(rec["row"]),
                sku=rec["sku"],
                title=rec["title"],
                category=rec["category"],
                images=[p for p in str(rec["images"]).split("|") if p],
                attributes={c[5:]: str(rec[c]) for c in attr_cols if str(rec[c]) != ""},
                priority=int(rec["priority"]) if str(rec["priority"]).strip() else 0,
                hero=str(rec["hero"]).strip().lower() in _TRUE,
            )
        )
    return products
