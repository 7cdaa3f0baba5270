import pandas as pd
import pytest

from lightbox.catalog.ingest import normalise
from lightbox.catalog.validate import validate_catalog
from lightbox.specs import load_brand_spec
from tests.conftest import ACME

GOOD = {"sku": "ACM-1", "title": "Mug", "category": "kitchen", "image": "/x/a.jpg", "color": "red",
        "material": "stoneware", "priority": "1", "hero": "false"}


def _frame(*overrides):
    rows = []
    for i, o in enumerate(overrides):
        row = {**GOOD, "sku": f"ACM-{i}", "image": f"/x/{i}.jpg", **o}
        rows.append(row)
    return normalise(pd.DataFrame(rows, dtype=str), "/x/catalog.csv")


@pytest.fixture(scope="module")
def spec():
    return load_brand_spec(ACME)


@pytest.mark.parametrize(
    "override, reason",
    [
        ({"sku": "a/b"}, "sku 'a/b' is not filename-safe"),
        ({"sku": "../etc"}, "sku '../etc' is not filename-safe"),
        ({"sku": "a\\b"}, "is not filename-safe"),
        ({"sku": "a\x00b"}, "is not filename-safe"),
        ({"sku": "x..y"}, "is not filename-safe"),
        ({"sku": ""}, "sku is empty"),
        ({"title": ""}, "title is empty"),
        ({"category": "garden"}, "category 'garden' is not in the brand spec (known: decor, kitchen, lighting, tableware; map it under categories, or set fallback_template)"),
        ({"priority": "high"}, "priority 'high' is not a whole number 0-9999"),
        ({"hero": "maybe"}, "hero 'maybe' is not one of true/false/yes/no/1/0"),
        ({"image": ""}, "no source image (only hero products may omit one)"),
        ({"color": ""}, "attribute 'color' is empty, used by template 'default'"),
        ({"color": "chartreuse"}, "attribute 'color' value 'chartreuse' is not in the brand's value set"),
    ],
)
def test_each_invalid_row_gets_a_clear_reason_and_the_rest_runs(spec, override, reason):
    result = validate_catalog(_frame({}, override, {}), spec)
    assert len(result.quarantined) == 1
    q = result.quarantined[0]
    assert q.row == 2
    assert reason in q.reason
    assert list(result.valid["sku"]) == ["ACM-0", "ACM-2"]


def test_duplicate_skus_quarantine_every_copy_naming_rows(spec):
    result = validate_catalog(_frame({"sku": "DUP"}, {}, {"sku": "DUP"}), spec)
    assert [q.row for q in result.quarantined] == [1, 3]
    assert all("sku 'DUP' appears more than once (rows 1, 3)" in q.reason for q in result.quarantined)


def test_hero_rows_need_no_image_or_template_attributes(spec):
    result = validate_catalog(_frame({"hero": "true", "image": "", "color": ""}), spec)
    assert result.quarantined == [] and len(result.valid) == 1


def test_missing_attribute_column_quarantines_rows_of_categories_that_use_it(spec):
    frame = _frame({}, {}).drop(columns=["attr_material"])
    frame.loc[0, "category"] = "decor"  # decor's template reads only {title} and {color}
    frame.loc[1, "category"] = "tableware"  # tableware's reads {material} too
    result = validate_catalog(frame, spec)
    assert [q.row for q in result.quarantined] == [2]
    assert "attribute 'material' is missing (no such column), used by template 'tableware'" in result.quarantined[0].reason


def test_duplicate_images_warn_by_default_and_quarantine_when_asked(spec):
    frame = _frame({"image": "/x/same.jpg"}, {"image": "/x/same.jpg"})
    warned = validate_catalog(frame, spec)
    assert warned.quarantined == [] and len(warned.warnings) == 2
    strict = validate_catalog(frame, spec.model_copy(update={"duplicate_images": "quarantine"}))
    assert len(strict.quarantined) == 2 and "is shared with another product" in strict.quarantined[0].reason


def test_several_problems_on_one_row_are_reported_together(spec):
    result = validate_catalog(_frame({"sku": "a/b", "category": "garden"}), spec)
    assert "not filename-safe" in result.quarantined[0].reason and "category 'garden'" in result.quarantined[0].reason


def test_invalid_share(spec):
    result = validate_catalog(_frame({}, {"title": ""}, {"title": ""}, {}), spec)
    assert result.invalid_share == 0.5


def test_a_fallback_template_takes_categories_the_spec_does_not_list(spec):
    """Without one, an unknown category quarantines the row; with one, the row is valid, its template's
    attributes are required like any other, and rendering looks it up through the fallback."""
    frame = _frame({"category": "garden"}, {"category": "garden", "color": ""}, {})
    assert [q.row for q in validate_catalog(frame, spec).quarantined] == [1, 2]
    lenient = spec.model_copy(update={"fallback_template": "decor"})
    result = validate_catalog(frame, lenient)
    assert [(q.row, q.reason) for q in result.quarantined] == [(2, "attribute 'color' is empty, used by template 'decor'")]
    assert lenient.template_name("garden") == "decor" and lenient.template_name("kitchen") == "default"
    assert lenient.fields_used("garden") == {"title", "color"}


def test_grouped_reasons_fold_rows_that_differ_only_in_a_value(spec):
    from lightbox.preflight import reason_lines

    frame = _frame(*([{"category": "shirts"}] * 4), *([{"category": "tops"}] * 2), {"category": "tops", "image": "", "sku": "NOIMG"})
    result = validate_catalog(frame, spec)
    lines = reason_lines(result.quarantined)
    assert lines[0].startswith("7 rows: category '…' is not in the brand spec (known: decor, kitchen, lighting, tableware;")
    assert lines[0].endswith("- 'shirts' 4, 'tops' 3")
    assert lines[1] == "1 row: no source image (only hero products may omit one)"


def test_a_row_with_two_problems_of_one_cause_counts_once(spec):
    """Issue 25, item 10: 3 problems in 2 rows were printed as "3 rows"."""
    from lightbox.preflight import reason_lines

    frame = _frame({"color": "", "material": ""}, {"color": ""}, {})
    result = validate_catalog(frame, spec)
    assert len(result.quarantined) == 2
    assert reason_lines(result.quarantined) == [
        "2 rows: attribute '…' is empty, used by template 'default' - 'color' 2, 'material' 1"]


def test_local_photo_files_are_probed_as_the_run_reads_them(spec, tmp_path):
    """A missing first photo makes the row invalid, a missing later one a warning; remote photos are not probed
    here (the run fetches them), and without a probe nothing is checked."""
    from lightbox.catalog.validate import local_file

    from tests.support.images import studio_photo, to_bytes

    (tmp_path / "a.jpg").write_bytes(to_bytes(studio_photo(60, 80)[0], "JPEG"))
    (tmp_path / "b.jpg").write_bytes(to_bytes(studio_photo(60, 80, seed=1)[0], "JPEG"))
    here, gone, other = str(tmp_path / "a.jpg"), str(tmp_path / "gone.jpg"), str(tmp_path / "b.jpg")
    frame = _frame({"image": here}, {"image": gone}, {"image": f"{other}|{gone}"}, {"image": "https://cdn.example.com/x.jpg"})
    result = validate_catalog(frame, spec, exists=local_file)
    assert [(q.row, q.reason) for q in result.quarantined] == [(2, f"photo file not found: {gone!r}")]
    assert [(w.row, w.reason) for w in result.warnings if "not found" in w.reason] == [(3, f"photo 2 not found: {gone!r}")]
    assert validate_catalog(frame, spec).quarantined == []
    assert local_file("file://" + here) and not local_file("file://" + gone) and local_file("s3://bucket/any.jpg")


def test_local_photos_the_run_could_not_read_are_found_by_validate(spec, tmp_path):
    """Zero-byte, non-image and truncated photos passed validate and then failed every output of the run."""
    from lightbox.catalog.validate import local_file
    from tests.support.images import studio_photo, to_bytes

    jpeg = to_bytes(studio_photo(120, 160)[0], "JPEG")
    png = to_bytes(studio_photo(120, 160)[0], "PNG")
    files = {"empty.jpg": b"", "notes.jpg": b"just some text, not a photo", "cut.jpg": jpeg[: len(jpeg) // 2],
             "cut.png": png[: len(png) // 2], "fine.jpg": jpeg, "fine.png": png}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    probed = {name: local_file(str(tmp_path / name)) for name in files}
    assert probed["fine.jpg"] is True and probed["fine.png"] is True
    assert probed["empty.jpg"] == "is empty (0 bytes)" and probed["notes.jpg"] == "is not an image this run can read"
    assert probed["cut.jpg"].startswith("is cut short (a JPEG") and probed["cut.png"].startswith("is cut short (a PNG")
    frame = _frame(*({"image": str(tmp_path / n)} for n in files))
    result = validate_catalog(frame, spec, exists=local_file)
    assert sorted(q.row for q in result.quarantined) == [1, 2, 3, 4]
    assert all("photo file" in q.reason for q in result.quarantined)



def test_products_sharing_their_other_photos_are_not_warned_but_a_shared_main_photo_is(spec):
    """Variants share a gallery's photos on purpose; the warning is about the main photo (the whole list used to be
    compared as one string: two products sharing only a main photo were not warned)."""
    frame = _frame({"image": "https://cdn.example.com/a.jpg|https://cdn.example.com/chart.jpg"},
                   {"image": "https://cdn.example.com/b.jpg|https://cdn.example.com/chart.jpg"},
                   {"image": "https://cdn.example.com/c.jpg"},
                   {"image": "https://cdn.example.com/c.jpg|https://cdn.example.com/c-side.jpg"})
    result = validate_catalog(frame, spec)
    warned = sorted((w.row, w.reason) for w in result.warnings if "shared" in w.reason)
    assert warned == [(3, "source image 'https://cdn.example.com/c.jpg' is shared with another product"),
                      (4, "source image 'https://cdn.example.com/c.jpg' is shared with another product")]
