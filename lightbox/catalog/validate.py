"""Validate a normalised catalog frame: structure and types (pandera), then data quality (Great
Expectations). Every invalid row gets one line of reasons; the valid rest carries on.

- pandera (:class:`CatalogFrame`): unique, filename-safe SKUs; non-empty titles; categories the brand
  spec knows; priority and hero flags that parse; a source image unless the product is a hero.
- Great Expectations (:func:`quality_suite`): completeness of every attribute the category's templates
  use, attribute values in the spec's value sets, duplicate source images (a warning by default).
- Local photo files (:func:`missing_local_images`, when the caller passes a file probe): a product whose
  photo is a local path that does not exist is invalid (the run would fail it); a later photo missing is a
  warning. Remote photos are fetched by the run and not probed here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa
from PIL import Image
from pandera.typing import Series

from lightbox.errors import CatalogError
from lightbox.records import QuarantinedRow
from lightbox.specs.models import BrandSpec

log = logging.getLogger(__name__)

SKU_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
# the brand's own files sit beside the SKU folders (<brand>/manifest.json, ...): no SKU may take their names
RESERVED_SKUS = frozenset({"manifest.json", "manifest.jsonl", "manifest.parquet", "latest-run.json", "consistency.json"})
HERO_VALUES = ["", "true", "false", "yes", "no", "1", "0", "y", "n", "TRUE", "FALSE", "True", "False", "Yes", "No"]
_TRUE = {"true", "yes", "1", "y"}


class CatalogFrame(pa.DataFrameModel):
    """Structure and types of a normalised catalog (values are still text, as read)."""

    row: Series[int]
    sku: Series[str] = pa.Field(unique=True)
    title: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 500})
    category: Series[str]
    images: Series[str]
    priority: Series[str] = pa.Field(str_matches=r"^\d{0,4}$")
    hero: Series[str] = pa.Field(isin=HERO_VALUES)

    @pa.check("sku", name="filename_safe")
    def _sku_filename_safe(cls, s: Series[str]) -> Series[bool]:
        return s.str.fullmatch(SKU_PATTERN) & ~s.str.contains("..", regex=False)

    @pa.check("sku", name="not_reserved")
    def _sku_not_reserved(cls, s: Series[str]) -> Series[bool]:
        return ~s.str.lower().isin(RESERVED_SKUS)

    class Config:
        strict = False  # attr_* columns vary by catalog


def _schema_for(spec: BrandSpec) -> pa.DataFrameSchema:
    """The model plus what depends on the spec: known categories, and which rows may lack a photo
    (heroes; and categories rendered text-to-image when the spec enables it)."""
    schema = CatalogFrame.to_schema()
    if spec.fallback_template is None:
        schema = schema.update_column("category", checks=[pa.Check.isin(sorted(spec.categories), name="known_category")])
    text_to_image = spec.diffusion is not None and spec.diffusion.text_to_image

    def photo_free(category: str) -> bool:
        return text_to_image and spec.knows(category) and spec.engine_for(category) == "diffusers"

    def image_unless_exempt(df: pd.DataFrame) -> pd.Series:
        return (df["images"] != "") | df["hero"].str.lower().isin(_TRUE) | df["category"].map(photo_free).astype(bool)

    schema.checks = [*schema.checks, pa.Check(image_unless_exempt, name="image_required")]
    return schema


def _reason(column: str | None, check: str, value: object, spec: BrandSpec, frame: pd.DataFrame, index: int) -> str:
    v = value
    if column == "sku":
        if check == "field_uniqueness":
            rows = frame.loc[frame["sku"] == v, "row"].tolist()
            return f"sku {v!r} appears more than once (rows {', '.join(map(str, rows))})"
        if v == "":
            return "sku is empty"
        if check == "not_reserved":
            return f"sku {v!r} is the name of one of the brand's own files ({', '.join(sorted(RESERVED_SKUS))}); rename the product"
        return (
            f"sku {v!r} is not filename-safe: 1-64 of letters, digits, '.', '_', '-', "
            "starting with a letter or digit, no '/', '\\', '..', spaces or control characters"
        )
    if column == "title":
        return "title is empty" if v == "" else f"title is over 500 characters ({len(str(v))})"
    if column == "category":
        return (f"category {v!r} is not in the brand spec (known: {', '.join(sorted(spec.categories))}; "
                "map it under categories, or set fallback_template)")
    if column == "priority":
        return f"priority {v!r} is not a whole number 0-9999"
    if column == "hero":
        return f"hero {v!r} is not one of true/false/yes/no/1/0"
    if check == "image_required":
        return "no source image (only hero products may omit one)"
    if check.startswith("column_in_dataframe"):
        return f"column {v!r} is missing"
    return f"{column or 'row'}: failed {check} with {v!r}"


Reasons = dict[int, list[tuple[str, str]]]  # frame index -> [(column, reason)]


def _add(out: Reasons, idx: int, column: str, reason: str) -> None:
    reasons = out.setdefault(idx, [])
    if (column, reason) not in reasons:
        reasons.append((column, reason))


def structural_errors(frame: pd.DataFrame, spec: BrandSpec) -> Reasons:
    """Frame index -> (column, reason), from the pandera schema (lazy: every failure, not just the first)."""
    try:
        _schema_for(spec).validate(frame, lazy=True)
        return {}
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
    out: Reasons = {}
    for case in cases.to_dict(orient="records"):
        idx = case.get("index")
        if idx is None or pd.isna(idx):
            # a frame-wide failure (wrong dtype, missing column) has no row: the whole catalog is bad
            raise CatalogError(f"catalog: {case.get('column')}: {case.get('check')} ({case.get('failure_case')!r})")
        idx = int(idx)
        column = case.get("column") if isinstance(case.get("column"), str) else None
        check = str(case.get("check"))
        if check == "image_required":  # a frame-wide check: pandera lists every column of the row; one reason
            _add(out, idx, "images", _reason(None, check, frame.at[idx, "images"], spec, frame, idx))
            continue
        value = case.get("failure_case")
        _add(out, idx, column or "", _reason(column, check, value, spec, frame, idx))
    return out


@dataclass
class Expectation:
    """One data-quality expectation, and the sentence a row gets when it fails it."""

    gx_expectation: object
    reason: str  # format string: {value}
    severity: str = "quarantine"  # or "warn"
    column: str = ""


def quality_suite(frame: pd.DataFrame, spec: BrandSpec) -> tuple[list[Expectation], Reasons]:
    """Great Expectations for this catalog under this spec, plus rows failing on absent columns."""
    import great_expectations as gx

    expectations: list[Expectation] = []
    absent: Reasons = {}
    for category in sorted(c for c in set(frame["category"]) if spec.knows(c)):
        tpl_name = spec.template_name(category)
        for name in sorted(spec.fields_used(category) - {"sku", "title", "category"}):
            col = f"attr_{name}"
            cond = f'category=="{category}"'
            if col not in frame.columns:
                for idx in frame.index[frame["category"] == category]:
                    _add(absent, int(idx), name, f"attribute {name!r} is missing (no such column), used by template {tpl_name!r}")
                continue
            expectations.append(
                Expectation(
                    gx.expectations.ExpectColumnValuesToNotBeNull(column=col, row_condition=cond, condition_parser="pandas"),
                    f"attribute {name!r} is empty, used by template {tpl_name!r}",
                    column=name,
                )
            )
    for name, values in sorted(spec.value_sets.items()):
        col = f"attr_{name}"
        if col in frame.columns:
            expectations.append(
                Expectation(
                    gx.expectations.ExpectColumnValuesToBeInSet(column=col, value_set=list(values)),
                    f"attribute {name!r} value {{value!r}} is not in the brand's value set",
                    column=name,
                )
            )
    expectations.append(
        Expectation(
            # the main photo: a gallery's other photos are often shared on purpose (variants, a size chart)
            gx.expectations.ExpectColumnValuesToBeUnique(column="main_image"),
            "source image {value!r} is shared with another product",
            severity=spec.duplicate_images,
            column="images",
        )
    )
    return expectations, absent


def quality_errors(frame: pd.DataFrame, spec: BrandSpec) -> tuple[Reasons, Reasons]:
    """Run the Great Expectations suite; returns (quarantine reasons, warnings) by frame index."""
    import great_expectations as gx

    if frame.empty:
        return {}, {}
    gx_frame = frame.replace({"": None})
    gx_frame["main_image"] = frame["images"].map(lambda s: str(s).split("|", 1)[0] or None if s else None)
    expectations, quarantine = quality_suite(frame, spec)
    warnings: Reasons = {}
    ctx = gx.get_context(mode="ephemeral")
    try:
        ctx.variables.progress_bars = {"globally": False, "metric_calculations": False}
    except Exception:  # cosmetic only: older/newer GX may not expose this setting
        log.debug("could not disable Great Expectations progress bars")
    batch = (
        ctx.data_sources.add_pandas("catalog")
        .add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": gx_frame})
    )
    suite = gx.ExpectationSuite(name="lightbox-catalog")
    for i, e in enumerate(expectations):
        e.gx_expectation.meta = {"lightbox_index": i}
        suite.add_expectation(e.gx_expectation)
    result = batch.validate(suite, result_format="COMPLETE")
    for res in result.results:  # GX does not keep the suite's order: match results by our index
        if res.success:
            continue
        exp = expectations[res.expectation_config.meta["lightbox_index"]]
        idxs = res.result.get("unexpected_index_list") or []
        values = res.result.get("unexpected_list") or [None] * len(idxs)
        target = quarantine if exp.severity == "quarantine" else warnings
        for idx, value in zip(idxs, values, strict=False):
            _add(target, int(idx), exp.column, exp.reason.format(value=value))
    return quarantine, warnings


@dataclass
class ValidationResult:
    valid: pd.DataFrame
    quarantined: list[QuarantinedRow]
    warnings: list[QuarantinedRow] = field(default_factory=list)
    skipped: list[QuarantinedRow] = field(default_factory=list)  # not products by design (grouped, archived...)
    layout: str = "lightbox"

    @property
    def total(self) -> int:
        """Rows that should have become products: skipped rows do not count for or against the catalog."""
        return len(self.valid) + len(self.quarantined)

    @property
    def invalid_share(self) -> float:
        return len(self.quarantined) / self.total if self.total else 0.0


def local_file(uri: str) -> bool | str:
    """The file probe the run uses: True when a local path (or ``file://``) is a file the run can read as an
    image, False when there is none, else why not (empty, not an image, cut short) - from its header and its
    last bytes, never a full decode. Other schemes are not probed (the run fetches them)."""
    if "://" in uri and not uri.startswith("file://"):
        return True
    path = uri.removeprefix("file://")
    if not os.path.isfile(path):
        return False
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "is empty (0 bytes)"
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(0, size - 4096))
            tail = f.read()
        with Image.open(path) as im:
            kind = im.format
    except Image.DecompressionBombError:  # a header that reads: the run refuses it by max_source_pixels, with the size
        return True
    except (OSError, ValueError, SyntaxError):
        return "is not an image this run can read" if size else "is empty (0 bytes)"
    if (kind == "JPEG" and b"\xff\xd9" not in tail) or (kind == "PNG" and b"IEND" not in tail[-64:]) or \
            (kind == "PNG" and not head.startswith(b"\x89PNG")):
        return f"is cut short (a {kind} without its end marker: an interrupted copy or download?)"
    return True


def missing_local_images(frame: pd.DataFrame, exists: Callable[[str], bool | str]) -> tuple[Reasons, Reasons]:
    """(rows whose photo is missing or unreadable, rows with a later photo so): a photo the run would not find
    or not read (``exists`` answers True, False or why not)."""
    missing: Reasons = {}
    later: Reasons = {}
    for idx, images in frame["images"].items():
        for i, uri in enumerate(u for u in str(images).split("|") if u):
            found = exists(uri)
            if found is True:
                continue
            if found is False:
                why = f"photo file not found: {uri!r}" if i == 0 else f"photo {i + 1} not found: {uri!r}"
            else:
                why = f"photo file {uri!r} {found}" if i == 0 else f"photo {i + 1} {uri!r} {found}"
            _add(missing if i == 0 else later, idx, "image", why)
    return missing, later


def validate_catalog(frame: pd.DataFrame, spec: BrandSpec, exists: Callable[[str], bool | str] | None = None) -> ValidationResult:
    """Split the catalog into valid rows and quarantined rows (one line of reasons each). ``exists`` probes local
    photo files (:func:`local_file` in a run; None leaves them to the run)."""
    reasons = structural_errors(frame, spec)
    structurally_ok = frame.loc[~frame.index.isin(list(reasons))]
    # hero rows are not rendered, so their templates' attributes are not required
    renderable = structurally_ok.loc[~structurally_ok["hero"].str.lower().isin(_TRUE)]
    dq, warn = quality_errors(renderable, spec)
    if exists is not None:
        missing, later = missing_local_images(renderable, exists)
        dq = {**dq, **{i: dq.get(i, []) + rs for i, rs in missing.items()}}
        warn = {**warn, **{i: warn.get(i, []) + rs for i, rs in later.items()}}
    for idx, rs in dq.items():
        for column, reason in rs:
            _add(reasons, idx, column, reason)
    source_columns = frame.attrs.get("columns") or {}

    def row_of(i: int, rs: list[tuple[str, str]]) -> QuarantinedRow:
        cols = dict.fromkeys(source_columns.get(c, c) for c, _ in rs if c)
        return QuarantinedRow(row=int(frame.at[i, "row"]), sku=str(frame.at[i, "sku"]), reason="; ".join(r for _, r in rs),
                              column=", ".join(cols), causes=[r for _, r in rs] if len(rs) > 1 else [])

    notes = frame.attrs.get("notes") or []

    def noted(kind: str) -> list[QuarantinedRow]:
        return [QuarantinedRow(row=n["row"], sku=n["sku"], reason=n["reason"], column=n["column"]) for n in notes if n["kind"] == kind]

    quarantined = sorted([*noted("invalid"), *(row_of(i, rs) for i, rs in reasons.items())], key=lambda q: q.row)
    warnings = sorted([*noted("warning"), *(row_of(i, rs) for i, rs in warn.items())], key=lambda q: q.row)
    skipped = noted("skipped")
    valid = frame.loc[~frame.index.isin(list(reasons))].reset_index(drop=True)
    log.info("validated %d rows: %d valid, %d quarantined, %d skipped, %d warnings",
             len(frame), len(valid), len(quarantined), len(skipped), len(warnings))
    return ValidationResult(valid=valid, quarantined=quarantined, warnings=warnings, skipped=skipped,
                            layout=frame.attrs.get("layout", "lightbox"))
