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


# a valid UTF-8 multi-byte sequence: its presence means the file is UTF-8 (with some broken rows at worst)
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
ENCODING_NAMES = {"cp1252": "Windows-1252", "latin-1": "Latin-1", "utf-16": "UTF-16"}
_SURROGATE = re.compile("[\udc80-\udcff]")
_UNDECODED = re.compile("[\U000f0080-\U000f00ff]")  # a byte that was not UTF-8, parked in the private use area


def decode_text(data: bytes) -> tuple[str, str]:
    """Catalog bytes as text, and the encoding used: UTF-8 (BOM or not); a file without a single valid UTF-8
    multi-byte sequence but with high bytes is a legacy single-byte export (Excel's "CSV" on Windows):
    Windows-1252, else Latin-1. A UTF-8 file with some broken bytes keeps them as markers so the rows
    holding them can be reported one by one."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode Text": UTF-16 with its BOM
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    if not _UTF8_MULTIBYTE.search(data):
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            return data.decode("latin-1"), "latin-1"
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")
    # parsers refuse lone surrogates: park each broken byte in the private use area, found again per row
    return _SURROGATE.sub(lambda m: chr(0xF0000 + ord(m.group()) - 0xDC00), text), "utf-8 (some rows broken)"


def _undecodable_rows(raw: pd.DataFrame) -> list[dict]:
    """Rows holding bytes that are not UTF-8: one invalid note each (the bytes themselves never quoted)."""
    notes = []
    for i, rec in enumerate(raw.itertuples(index=False)):
        bad = [str(col) for col, v in zip(raw.columns, rec, strict=True) if isinstance(v, str) and _UNDECODED.search(v)]
        if bad:
            sku = next((str(v) for col, v in zip(raw.columns, rec, strict=True) if str(col).strip().lower() in
                        ("sku", "variant sku", "id") and isinstance(v, str) and not _UNDECODED.search(v)), "")
            notes.append({"row": i + 1, "sku": sku, "column": ", ".join(bad), "kind": "invalid",
                          "reason": f"not valid UTF-8 text in {', '.join(repr(b) for b in bad)} (re-export the catalog as UTF-8)"})
    return notes


def _parse(data: bytes, fmt: str, uri: str) -> pd.DataFrame:
    try:
        if fmt in ("csv", "tsv"):
            text, encoding = decode_text(data)
            raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep="\t" if fmt == "tsv" else ",")
            notes = _undecodable_rows(raw) if encoding.startswith("utf-8 (") else []
            if notes:  # the rows stay (row numbers hold); read_catalog quarantines them after the layout is mapped
                raw = raw.apply(lambda col: col.map(lambda v: _UNDECODED.sub("\ufffd", v) if isinstance(v, str) else v))
            raw.attrs.update({"encoding": encoding, "decode_notes": notes})
            return raw
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
    encoding, decode_notes = raw.attrs.get("encoding", "utf-8"), raw.attrs.get("decode_notes", [])
    if layout in (None, "auto"):
        layout = "google-merchant" if fmt == "xml" else detect_layout([str(c) for c in raw.columns])
    if layout == "lightbox":
        frame = normalise(raw, uri)
        frame.attrs.update({"layout": "lightbox", "notes": [], "columns": {}})
    else:
        try:
            adapted = adapt(layout, raw, uri)
        except KeyError as e:
            raise CatalogError(f"{uri}: not a {layout} export: column {e.args[0]!r} is missing") from None
        frame = records_frame(adapted, uri)
    return _with_decoding(frame, encoding, decode_notes)


def only_skus(frame: pd.DataFrame, skus: list[str] | None) -> pd.DataFrame:
    """The rows of these SKUs (a catalog-update event), with the reading notes about them: what the run
    validates and renders. Every row of a requested SKU stays (a duplicated SKU is still caught); checks
    across the whole catalog (photos shared between products) run with catalog runs. None: all rows."""
    if skus is None:
        return frame
    wanted = set(skus)
    out = frame.loc[frame["sku"].isin(wanted)].reset_index(drop=True)
    out.attrs = {**frame.attrs, "notes": [n for n in frame.attrs.get("notes") or [] if n.get("sku") in wanted],
                 "catalog_rows": len(frame)}
    return out


def _with_decoding(frame: pd.DataFrame, encoding: str, decode_notes: list[dict]) -> pd.DataFrame:
    """Rows with bytes that are not UTF-8 leave the frame as invalid notes; a legacy encoding is a warning."""
    attrs = dict(frame.attrs)
    notes = list(attrs.get("notes") or [])
    if decode_notes:
        bad = {n["row"] for n in decode_notes}
        frame = frame.loc[~frame["row"].isin(bad)].reset_index(drop=True)
        notes += decode_notes
    if encoding in ("cp1252", "latin-1", "utf-16"):
        notes.append({"row": 0, "sku": "", "column": "", "kind": "warning",
                      "reason": f"the catalog is not UTF-8: read as {ENCODING_NAMES[encoding]} "
                                "(export it as UTF-8 to be sure every accent is read right)"})
    frame.attrs.update({**attrs, "notes": notes, "encoding": encoding})
    return frame


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
