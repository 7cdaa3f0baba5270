import json

import pandas as pd
import pytest

from lightbox.catalog.ingest import read_catalog, to_products
from lightbox.errors import CatalogError

ROWS = [
    {"sku": "A-1", "title": "Mug", "category": "kitchen", "image": "img/a.jpg", "color": "red", "priority": "2", "hero": "false"},
    {"sku": "00123", "title": "Bowl", "category": "tableware", "image": "s3://b/p.jpg|img/c.jpg", "color": "", "priority": "", "hero": "yes"},
]


def _write(tmp_path, fmt):
    if fmt == "csv":
        p = tmp_path / "cat.csv"
        pd.DataFrame(ROWS).to_csv(p, index=False)
    elif fmt == "jsonl":
        p = tmp_path / "cat.jsonl"
        lines = []
        for r in ROWS:
            r = dict(r)
            color = r.pop("color")
            lines.append(json.dumps({**r, "attributes": {"color": color}}))
        p.write_text("\n".join(lines) + "\n")
    else:
        p = tmp_path / "cat.parquet"
        pd.DataFrame(ROWS).to_parquet(p)
    return p


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("as_uri", [False, True])
def test_formats_normalise_to_one_record(tmp_path, fmt, as_uri):
    path = _write(tmp_path, fmt)
    frame = read_catalog(f"file://{path}" if as_uri else str(path))
    products = to_products(frame)
    assert [p.sku for p in products] == ["A-1", "00123"]  # leading zeros survive
    a, b = products
    assert a.images == [str(tmp_path / "img" / "a.jpg")]  # relative to the catalog's folder
    assert b.images == ["s3://b/p.jpg", str(tmp_path / "img" / "c.jpg")]
    assert a.attributes == {"color": "red"} and b.attributes == {}
    assert (a.priority, a.hero, b.priority, b.hero) == (2, False, 0, True)
    assert (a.row, b.row) == (1, 2)


def test_catalog_on_s3(s3_bucket, tmp_path):
    from lightbox.storage import filesystem

    fs, _ = filesystem(f"s3://{s3_bucket}")
    fs.put_file(str(_write(tmp_path, "csv")), f"{s3_bucket}/feeds/cat.csv")
    products = to_products(read_catalog(f"s3://{s3_bucket}/feeds/cat.csv"))
    assert products[0].images == [f"s3://{s3_bucket}/feeds/img/a.jpg"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("c.csv", "sku,name\nA,b\n", r"unknown column layout: missing 'title', 'category', 'image'; found 'sku', 'name'"),
        ("c.csv", "", r"the catalog is empty"),
        ("c.csv", "sku,title,category,image\n", r"header but no rows"),
        ("c.jsonl", '{"sku": "A"\n', r"invalid JSON on line 1"),
        ("c.jsonl", "[1, 2]\n", r"line 1: expected a JSON object"),
        ("c.parquet", "not parquet", r"cannot parse as parquet"),
        ("c.xlsx", "x", r"unknown catalog format"),
        ("c.jsonl", b'{"sku": "\xff\xfe"}\n', r"not UTF-8"),  # CSV/TSV in other encodings are read: test_api_hostile.py
    ],
)
def test_unreadable_catalogs_name_file_and_problem(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CatalogError, match=message) as err:
        read_catalog(str(p))
    assert str(p) in str(err.value)


def test_missing_catalog(tmp_path):
    with pytest.raises(CatalogError, match="no such file"):
        read_catalog(str(tmp_path / "missing.csv"))
