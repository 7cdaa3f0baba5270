"""The run report holds for channels with 0, 1 and many live images (a channel with one image has no
consistency score: the report said so with a crash, after the images were published)."""

from __future__ import annotations

import pytest

from lightbox.testing.oracles import consistency
from lightbox.report import RunSummary


def _entry(sku: str, channel: str, fill: float) -> dict:
    return {"sku": sku, "channel": channel, "category": "mugs",
            "metrics": {"fill_longest": fill, "clipped": 0.01, "border_mean": [255.0, 255.0, 255.0], "phash": None}}


def _summary(cons: dict | None) -> RunSummary:
    zero = dict(ingested=3, invalid=0, skipped=0, products=3, generated=4, unchanged=0, passed=4, failed=0, published=4,
                to_review=0, wall_s=1.0, images_per_s=4.0, invalid_share=0.0, failed_share=0.0)
    return RunSummary(run_id="r1", brand="b", spec_version=1, catalog="c.csv", out="out", manifest_uri="m", summary_uri="s/summary.json",
                      quarantine=[], skipped_rows=[], warnings=[], failures=[], consistency=cons, **zero)


@pytest.mark.parametrize("images", [{}, {"web_transparent": 1}, {"amazon_main": 3, "web_transparent": 1}, {"amazon_main": 3}])
def test_the_report_holds_for_channels_with_zero_one_and_many_images(images):
    entries = {f"S{i}/{ch}": _entry(f"S{i}", ch, 0.8 + 0.01 * i) for ch, n in images.items() for i in range(n)}
    cons = consistency(entries)
    text = _summary(cons).markdown()
    if images.get("web_transparent") == 1:
        assert cons["channels"]["web_transparent"]["score"] is None
    if images.get("web_transparent") == 1 and images.get("amazon_main"):
        assert "web_transparent: not scored (1 live image)" in text
    if images.get("amazon_main"):
        assert "amazon_main: 1.000 over 3 images" in text or "amazon_main: 0." in text
    if not images or set(images) == {"web_transparent"}:
        assert "catalog consistency: not enough images yet" in text


def test_failures_on_one_unreachable_host_are_one_line_naming_the_host(tmp_path):
    """Issue 25, item 6: photos on a host that does not resolve (``.invalid`` never does, RFC 6761) failed with one
    repeated line per product; now one line names the host and the products, and other causes keep their own."""
    import pandas as pd

    from lightbox.fetch_policy import FetchPolicy
    from lightbox.pipeline import run_plain
    from lightbox.report import failure_lines
    from tests.conftest import ACME
    from tests.support.images import studio_photo, to_bytes

    (tmp_path / "good.jpg").write_bytes(to_bytes(studio_photo(800, 1000)[0], "JPEG"))
    rows = [{"sku": "GOOD-1", "title": "Mug", "category": "kitchen", "image": str(tmp_path / "good.jpg"), "color": "red",
             "material": "stoneware"}]
    rows += [{**rows[0], "sku": f"FAR-{i}", "image": f"https://photos.lightbox-test.invalid/p{i}.jpg"} for i in range(7)]
    pd.DataFrame(rows).to_csv(tmp_path / "catalog.csv", index=False)
    policy = FetchPolicy(retries=0, cache_dir=str(tmp_path / "cache"))
    s = run_plain(str(tmp_path / "catalog.csv"), ACME, str(tmp_path / "out"), fetch_policy=policy)
    assert s.published == 3 and len(s.failures) == 21
    (line,) = failure_lines(s.failures)
    assert line.startswith("failed 7 products (21 outputs, render): source image not fetched: "
                           "https://photos.lightbox-test.invalid/...: cannot resolve 'photos.lightbox-test.invalid'")
    assert line.endswith(" - FAR-0, FAR-1, FAR-2, FAR-3, FAR-4, ... (2 more)")
    single = [f for f in s.failures if f["sku"] == "FAR-3"]
    assert failure_lines(single) == [f"failed FAR-3 (3 outputs, render): {single[0]['reason']}"]  # its own URL, in full


@pytest.mark.slow
def test_counts_add_up_when_what_a_run_renders_is_already_live(tmp_path):
    """Issue 25, item 14: outputs re-rendered to bytes already live (an interrupted attempt, a lost record) were in
    "generated" but neither "published" nor "unchanged" (72 generated, 69 published, 0 unchanged)."""
    import shutil

    from lightbox.pipeline import run_plain
    from tests.conftest import ACME
    from tests.support.helpers import make_catalog

    catalog = make_catalog(tmp_path / "cat", n_good=2)
    first = run_plain(str(catalog), ACME, str(tmp_path / "out"))
    assert first.generated == first.published == 6 and first.already_live == 0
    # the live objects without their run state (as an interrupted attempt or a lost record leaves them)
    shutil.copytree(tmp_path / "out", tmp_path / "moved", ignore=shutil.ignore_patterns("_lightbox", "manifest.*"))
    again = run_plain(str(catalog), ACME, str(tmp_path / "moved"))
    assert again.generated == again.published == again.already_live == 6 and again.unchanged == 0
    assert len(again.published_images) == 6


def test_a_failed_chunk_counts_what_it_made_live_before_failing(tmp_path):
    """Issue 25, item 14: a chunk that failed after its retries was reported all failed while part of it was live and
    recorded ("60 published, 12 failed" with 62 live)."""
    from lightbox.publish import live_before_failure
    from lightbox.records import Output
    from lightbox.state import RunState
    from lightbox.storage import Store

    store = Store(str(tmp_path / "out"))
    state = RunState.of(store)
    state.ensure_brand(store, "acme-home")
    made = [Output(sku="A", row=1, category="kitchen", channel=ch, state="live", qc="passed",
                   uri=store.uri(f"acme-home/A/{ch}.jpg"), sha256="ab" * 32, bytes=1000, fingerprint="f") for ch in ("amazon_main", "shopify_square")]
    state.record("acme-home", made, "run-2")
    state.record("acme-home", [made[0].model_copy(update={"sku": "B"})], "run-1")  # an earlier run's, not this one's
    failed = [Output(sku=s, row=1, category="kitchen", channel=ch, state="failed", error="chunk 0: publish failed")
              for s in ("A", "B") for ch in ("amazon_main", "shopify_square", "google_merchant")]
    got = live_before_failure(failed, state.entries("acme-home"), "run-2")
    assert [(o.sku, o.channel, o.state) for o in got if o.state == "live"] == [
        ("A", "amazon_main", "live"), ("A", "shopify_square", "live")]
    assert sum(o.state == "failed" for o in got) == 4 and got[0].uri == made[0].uri and got[0].sha256 == "ab" * 32


def test_an_incremental_rerun_is_measured_against_the_catalog_it_checks_not_the_few_it_renders(tmp_path):
    """A nightly rerun renders again only the outputs that failed last time: measured against those, the share was
    100 % and the alarm rang every night for one bad photo; measured against the run's outputs it is 3 of 42."""
    from lightbox.records import Output
    from lightbox.run import Run
    from lightbox.storage import Store

    outputs = [Output(sku=f"S{i}", row=i + 1, category="kitchen", channel="amazon_main", state="unchanged", qc="passed")
               for i in range(39)]
    outputs += [Output(sku="BAD", row=40, category="kitchen", channel=ch, state="checked", qc="failed")
                for ch in ("amazon_main", "shopify_square", "google_merchant")]
    run = Run(run_id="r", brand="acme-home", spec_version=1, catalog="c.csv", out_uri=str(tmp_path), started=0.0, ingested=14,
              products=14, max_failed_share=0.2)
    s = run.summary(outputs, Store(str(tmp_path)), clock=lambda: 1.0)
    assert s.failed_share == round(3 / 42, 4) and not s.alarm
