"""The quality gate against a labelled set of good and bad outputs (tests/support/quality_set.py): no good
image rejected, every bad one caught by the rule it is labelled with."""

import pytest

from lightbox.quality.checks import dhash
from lightbox.testing.oracles import hamming
from lightbox.specs import load_channel_presets, load_rule_packs
from tests.support.quality_set import build_cases

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def judged():
    return [(c, c.judge()) for c in build_cases()]


def test_the_set_is_big_enough(judged):
    good = [c for c, _ in judged if c.expect is None]
    bad = [c for c, _ in judged if c.expect is not None]
    assert len(judged) >= 40 and len(good) >= 20 and len(bad) >= 20


def test_no_good_image_is_rejected(judged):
    rejected = {c.name: o.qc_reasons for c, o in judged if c.expect is None and o.qc == "failed"}
    assert rejected == {}


def test_every_bad_image_is_caught_by_the_rule_it_names(judged):
    missed = {}
    for c, o in judged:
        if c.expect is None:
            continue
        fired = [r.split("]", 1)[1].strip().split(":", 1)[0] for r in o.qc_reasons if r.startswith("[fail]")]
        if o.qc != "failed" or c.expect not in fired:
            missed[c.name] = (c.expect, o.qc_reasons)
    assert missed == {}


def test_every_rule_names_its_source_and_packs_cover_six_marketplaces():
    packs = load_rule_packs()
    assert {"amazon", "walmart", "google_merchant", "shopify", "ebay", "etsy", "lightbox"} <= set(packs)
    for pack in packs.values():
        for rule in pack.rules:
            assert rule.source and rule.id
    ids = [r.id for p in packs.values() for r in p.rules]
    assert len(ids) == len(set(ids))
    assert all(load_channel_presets()[c].rules for c in load_channel_presets())


def test_near_duplicates_by_perceptual_hash():
    import numpy as np

    rng = np.random.default_rng(0)
    a = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + 3, 0, 255)
    c = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    assert hamming(dhash(a), dhash(b)) <= 30 and hamming(dhash(a), dhash(c)) > 200
