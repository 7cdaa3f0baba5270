"""Every photo of a product: rendered per channel with its position and role, a photo shared by variants cut
once, a rerun that writes nothing, a removed photo retired, gallery caps, role-scoped marketplace rules, and
the platforms' import files read back through Lightbox's own readers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import lightbox.generate as generate
from lightbox.catalog.export import ExportError, export
from lightbox.catalog.formats import Listing
from lightbox.catalog.formats.shopify import export_csv as shopify_csv
from lightbox.catalog.ingest import read_catalog, to_products
from lightbox.catalog.validate import local_file, validate_catalog
from lightbox.engines import build_engines
from lightbox.fetch_policy import FetchPolicy
from lightbox.pipeline import run_plain
from lightbox.plan import plan_run
from lightbox.quality.checks import evaluate
from lightbox.records import RunContext
from lightbox.specs import load_brand_spec, spec_channels
from lightbox.specs.models import resolve_look
from lightbox.state import RunState
from lightbox.storage import Store
from tests.conftest import ACME
from tests.support.helpers import GALLERY, make_catalog, make_gallery_catalog

CHANNELS = ["amazon_main", "google_merchant", "shopify_square"]
BASE = "https://cdn.example.com/media"


def _entries(out) -> dict[str, dict]:
    return RunState.of(Store(str(out))).entries("acme-home")


@pytest.mark.slow
def test_every_photo_published_per_channel_then_a_rerun_writes_nothing_and_a_removed_photo_is_retired(tmp_path):
    catalog = make_gallery_catalog(tmp_path / "c1")
    out = tmp_path / "out"
    first = run_plain(str(catalog), ACME, str(out))
    assert (first.products, first.generated, first.published, first.failed) == (3, 27, 27, 0)
    entries = _entries(out)
    for sku, (title, files) in GALLERY.items():
        for ch in CHANNELS:
            for k, f in enumerate(files, start=1):
                name = ch if k == 1 else f"{ch}-{k}"
                assert (out / "acme-home" / sku / f"{name}.jpg").is_file()
                e = entries[f"{sku}/{name}"]
                assert (e["photo"], e["role"], e["title"]) == (k, "main" if k == 1 else "additional", title)
                assert e["source"].endswith(f"img/{f}") and e["qc"] in ("passed", "warned")

    again = run_plain(str(catalog), ACME, str(out))
    assert (again.generated, again.published, again.unchanged, again.retired) == (0, 0, 27, [])

    # the jar's second photo leaves the catalog: its third moves up to position 2 (rendered again), position 3 is retired
    jar = out / "acme-home" / "GAL-JAR"
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "acme-home").glob("GAL-MUG-*/*.jpg")}
    third = {ch: (jar / f"{ch}-3.jpg").read_bytes() for ch in CHANNELS}
    dropped = run_plain(str(make_gallery_catalog(tmp_path / "c2", drop={"GAL-JAR": "acm-jar-024.jpg"})), ACME, str(out))
    assert dropped.generated == 3 and dropped.published == 3 and dropped.unchanged == 21
    assert sorted((r["sku"], r["channel"], r["photo"]) for r in dropped.retired) == [("GAL-JAR", ch, 3) for ch in CHANNELS]
    report = dropped.markdown()  # the run report (a Prefect artifact) lists them too
    assert "- **3** images retired (photos the catalog no longer has or the gallery cap leaves out): " in report
    assert "GAL-JAR/amazon\\_main-3" in report
    assert not list(jar.glob("*-3.jpg"))
    assert {ch: (jar / f"{ch}-2.jpg").read_bytes() for ch in CHANNELS} == third  # the same photo, now second
    entries = _entries(out)
    assert not [n for n in entries if n.startswith("GAL-JAR/") and n.endswith("-3")]
    assert {n for n in entries if n.startswith("GAL-JAR/")} == {f"GAL-JAR/{c}{s}" for c in CHANNELS for s in ("", "-2")}
    assert {p.name: p.stat().st_mtime_ns for p in (out / "acme-home").glob("GAL-MUG-*/*.jpg")} == kept
    manifest = [line for line in (out / "acme-home" / "manifest.jsonl").read_text().splitlines() if '"GAL-JAR"' in line]
    assert len(manifest) == 6


@pytest.mark.slow
def test_a_photo_shared_by_variants_is_fetched_and_cut_once(tmp_path, monkeypatch):
    catalog = make_gallery_catalog(tmp_path)
    spec = load_brand_spec(ACME)
    products = to_products(validate_catalog(read_catalog(str(catalog)), spec, exists=local_file).valid)
    plan = plan_run(products, spec, {}, chunk_size=2)
    assert [sorted({i.product.sku for i in c.items}) for c in plan.chunks] == [["GAL-JAR"], ["GAL-MUG-RED", "GAL-MUG-TEAL"]]
    assert [[i.photo for i in c.items] for c in plan.chunks] == [[1, 2, 3], [1, 2, 3, 1, 2, 3]]
    cut = []

    def counted(images, params, segmenter):
        cut.append(len(images))
        return real(images, params, segmenter)

    real = generate.cut_out_many
    monkeypatch.setattr(generate, "cut_out_many", counted)
    ctx = RunContext(run_id="r1", brand_uri=ACME, out_uri=str(tmp_path / "out"), fetch=FetchPolicy().for_catalog(str(catalog)))
    store = Store(ctx.out_uri)
    outputs = generate.generate_chunk(plan.chunks[1], spec, spec_channels(spec), ctx, store, build_engines(spec, None))
    assert cut == [3]  # six photos in the chunk, three distinct
    assert len(outputs) == 18 and all(o.state == "rendered" for o in outputs)
    shared = {(o.sku, o.photo) for o in outputs if o.metrics.get("cutout_shared")}
    assert shared == {("GAL-MUG-TEAL", k) for k in (1, 2, 3)}
    by = {(o.sku, o.channel, o.photo): o for o in outputs}
    for ch in CHANNELS:  # the same photo and look: the same bytes under each variant's own key
        for k in (1, 2, 3):
            assert by[("GAL-MUG-RED", ch, k)].sha256 == by[("GAL-MUG-TEAL", ch, k)].sha256


@pytest.mark.slow
def test_gallery_caps_per_brand_and_channel_and_lowering_one_retires(tmp_path):
    text = open(ACME).read()
    capped = tmp_path / "capped.yaml"
    capped.write_text(text + "\ngallery: {max: 2, channels: {amazon_main: 1}}\n")
    catalog = make_gallery_catalog(tmp_path / "c")
    out = tmp_path / "out"
    s = run_plain(str(catalog), str(capped), str(out))
    names = {n.split("/", 1)[1] for n in _entries(out) if n.startswith("GAL-JAR/")}
    assert names == {"amazon_main", "google_merchant", "google_merchant-2", "shopify_square", "shopify_square-2"}
    assert s.published == 15

    lower = tmp_path / "lower.yaml"
    lower.write_text(text + "\ngallery: {max: 1}\n")
    s = run_plain(str(catalog), str(lower), str(out))
    assert s.generated == 0 and len(s.retired) == 6  # the second photos of google_merchant and shopify_square
    assert {n.split("/", 1)[1] for n in _entries(out) if n.startswith("GAL-JAR/")} == set(CHANNELS)

    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\ngallery: {channels: {etsy_listing: 3}}\n")
    with pytest.raises(Exception, match="gallery.channels: 'etsy_listing' not in channels"):
        load_brand_spec(str(bad))


def test_a_main_image_rule_warns_on_an_additional_photo():
    spec = load_brand_spec(ACME)
    amazon = next(ch for ch in spec_channels(spec) if ch.name == "amazon_main")
    look = resolve_look(spec, "kitchen", amazon)
    rules = [r for r in amazon.rules if r.id in ("amazon-fill", "amazon-pure-white", "amazon-max-size")]
    look = look.model_copy(update={"channel": amazon.model_copy(update={"rules": rules})})
    metrics = {"fill_longest": 0.6, "border_purity": 0.97, "longest_side": 2000}
    main = evaluate(metrics, look, role="main")
    extra = evaluate(metrics, look, role="additional")
    assert main[0] == "failed" and all(r.startswith("[fail]") for r in main[1])
    assert extra[0] == "warned" and sorted(extra[2]) == ["amazon-fill", "amazon-pure-white"]
    assert all(r.startswith("[warn]") for r in extra[1])
    assert evaluate({**metrics, "longest_side": 20000}, look, role="additional")[0] == "failed"  # other rules hold


def _read_back(path, layout: str) -> dict[str, list[str]]:
    frame = read_catalog(str(path), layout=layout)
    return {r["sku"]: r["images"].split("|") for r in frame.to_dict("records")}


@pytest.mark.slow
def test_export_files_read_back_to_the_same_products_and_images(tmp_path, capsys):
    out = tmp_path / "out"
    run_plain(str(make_gallery_catalog(tmp_path / "c")), ACME, str(out))
    store = Store(str(out))
    entries = list(_entries(out).values())
    for fmt, channel, ext in (("shopify", "shopify_square", "csv"), ("woocommerce", "amazon_main", "csv"),
                              ("google-merchant", "google_merchant", "tsv")):
        made = export(entries, fmt, channel, store.key_of, BASE)
        path = tmp_path / f"{fmt}.{ext}"
        path.write_text(made.text)
        expected = {sku: [f"{BASE}/acme-home/{sku}/{channel}{'' if k == 1 else f'-{k}'}.jpg" for k in range(1, len(files) + 1)]
                    for sku, (_, files) in GALLERY.items()}
        assert _read_back(path, fmt) == expected, fmt
        assert (made.products, made.images, made.left_out) == (3, 9, [])
    shop = list(csv.DictReader(io.StringIO(export(entries, "shopify", "shopify_square", store.key_of, BASE).text)))
    assert [r["Image Alt Text"] for r in shop if r["Handle"] == "gal-jar"] == ["Jar in teal"] * 3
    with pytest.raises(ExportError, match="not a public URL: give --base-url"):
        export(entries, "shopify", "shopify_square", store.key_of, None)

    from flows.cli import main

    to = tmp_path / "no-such-folder" / "x.csv"
    assert main(["export", "acme-home", "--out", str(out), "--format", "shopify", "--base-url", BASE, "--to", str(to)]) == 2
    assert main(["export", "acme-home", "--out", str(out), "--format", "woocommerce", "--base-url", BASE]) == 2  # which channel?
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"lightbox: error: --to {to}: cannot write (No such file or directory)"
    assert err[1].startswith("lightbox: error: --channel: which channel's images go into the woocommerce file?")
    assert main(["manifest", "acme-home", "--out", str(out), "--sku", "GAL-JAR"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["sku", "channel", "photo", "role", "qc"]
    assert sum(line.split()[2:4] == ["3", "additional"] for line in table[1:-1]) == 3


def test_the_public_base_url_is_kept_per_output_root(tmp_path, monkeypatch, capsys):
    """--remember saves --base-url with the output root; later exports from that root (a cron job, another
    operator) use it; --base-url and $LIGHTBOX_PUBLIC_BASE_URL still win; a damaged file is one line."""
    from flows.cli import main
    from lightbox.catalog.export import RootSettings

    monkeypatch.delenv("LIGHTBOX_PUBLIC_BASE_URL", raising=False)
    out = tmp_path / "out"
    run_plain(str(make_catalog(tmp_path / "c", n_good=1)), ACME, str(out))
    args = ["export", "acme-home", "--out", str(out), "--format", "google-merchant"]

    def links() -> set[str]:
        rows = csv.DictReader(io.StringIO(capsys.readouterr().out), delimiter="\t")
        return {r["image_link"].rsplit("/acme-home/", 1)[0] for r in rows}

    assert main(args) == 2 and "add --remember" in capsys.readouterr().err  # local files are no public URLs
    assert main([*args, "--remember"]) == 2 and "give --base-url URL" in capsys.readouterr().err
    assert main([*args, "--base-url", "ftp://cdn.example.com", "--remember"]) == 2
    assert "must be an https:// or http:// URL" in capsys.readouterr().err and not (out / "_lightbox" / "settings.json").exists()
    assert main([*args, "--base-url", BASE, "--remember"]) == 0 and links() == {BASE}
    assert RootSettings.load(Store(str(out))).public_base_url == BASE
    assert main(args) == 0 and links() == {BASE}  # remembered for this root
    assert main([*args, "--base-url", "https://other.example.com"]) == 0 and links() == {"https://other.example.com"}
    monkeypatch.setenv("LIGHTBOX_PUBLIC_BASE_URL", "https://env.example.com")
    assert main(args) == 0 and links() == {"https://env.example.com"}
    monkeypatch.delenv("LIGHTBOX_PUBLIC_BASE_URL")
    (out / "_lightbox" / "settings.json").write_text('{"public_base_url": "cdn.example.com"}')
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "settings.json: not an output root's settings (public_base_url:" in err and "--remember" in err


def test_a_product_the_catalog_no_longer_has_is_named_and_retired_when_asked(tmp_path, capsys):
    """A product deleted from the shop is gone from its next export: its images stayed live, silently, and the
    manifest and the import files kept offering it. Now the run names it (kept live: a partial catalog must
    not take the brand down), and --retire-missing takes it down; a row that is only invalid this time is not
    "missing" (an edit mistake never takes a product down)."""
    import pandas as pd

    from flows.cli import main

    catalog, out = make_catalog(tmp_path / "c", n_good=6), tmp_path / "out"  # 1 invalid row of 5: under the spec's 25 %
    run_plain(str(catalog), ACME, str(out))
    frame = pd.read_csv(catalog)
    frame = frame[frame["sku"] != "GOOD-2"]  # deleted from the shop
    frame.loc[frame["sku"] == "GOOD-1", "category"] = "garden"  # an invalid edit: quarantined this time
    frame.to_csv(catalog, index=False)
    kept = run_plain(str(catalog), ACME, str(out))
    assert kept.not_in_catalog == ["GOOD-2"] and kept.retired == [] and kept.invalid == 1
    assert "1 products with live images are not in this catalog: GOOD-2 (still live" in kept.markdown()
    assert len(list((out / "acme-home" / "GOOD-2").glob("*.jpg"))) == 3 and sum(n.startswith("GOOD-2/") for n in _entries(out)) == 3
    assert main(["run", str(catalog), "--brand", ACME, "--out", str(out)]) == 0  # the command line says so too
    assert "not in this catalog: 1 products still live (GOOD-2); --retire-missing takes them down" in capsys.readouterr().out

    # a catalog-update event for the deleted SKU (lightbox run --skus GOOD-2 --retire-missing; the plan is what
    # the run then does): only the requested SKUs' rows of the state are read, and only those are named
    spec, state = load_brand_spec(ACME), RunState.of(Store(str(out)))
    products = to_products(validate_catalog(read_catalog(str(catalog)), spec).valid)
    event = plan_run(products, spec, state.entries("acme-home", ["GOOD-2"]), 8, only=["GOOD-2"], retire_missing=True)
    assert event.absent == ["GOOD-2"] and event.unknown_skus == ["GOOD-2"] and len(event.retire) == 3
    other = plan_run(products, spec, state.entries("acme-home", ["GOOD-0"]), 8, only=["GOOD-0"], retire_missing=True)
    assert other.absent == [] and other.retire == []

    gone = run_plain(str(catalog), ACME, str(out), retire_missing=True)
    assert sorted((r["sku"], r["channel"]) for r in gone.retired) == [("GOOD-2", ch) for ch in CHANNELS]
    assert not list((out / "acme-home" / "GOOD-2").glob("*.jpg")) and not any(n.startswith("GOOD-2/") for n in _entries(out))
    assert len(list((out / "acme-home" / "GOOD-1").glob("*.jpg"))) == 3  # invalid this time, not missing: still live
    assert "(still live" not in gone.markdown()
    again = run_plain(str(catalog), ACME, str(out), retire_missing=True)
    assert again.not_in_catalog == [] and again.retired == []


def test_a_product_without_a_live_main_image_is_left_out_and_positions_close_up():
    def entry(sku, photo, ch="shopify_square"):
        name = ch if photo == 1 else f"{ch}-{photo}"
        return {"sku": sku, "channel": ch, "photo": photo, "variant": 0, "uri": f"/r/b/{sku}/{name}.jpg", "title": sku,
                "alt_text": f"{sku} {photo}"}

    entries = [entry("A", 1), entry("A", 2), entry("A", 4), entry("B", 2), entry("B", 3), entry("C", 1, "google_merchant")]
    made = export(entries, "woocommerce", "shopify_square", lambda uri: uri.removeprefix("/r/"), BASE)
    assert made.text.splitlines()[1:] == [f"A,\"{BASE}/b/A/shopify_square.jpg, {BASE}/b/A/shopify_square-2.jpg, "
                                          f"{BASE}/b/A/shopify_square-4.jpg\""]
    assert len(made.left_out) == 2 and made.left_out[1].startswith("B: its main image is not live")
    # a product live on another channel only is named too (it failed this channel's gate), not dropped silently
    assert made.left_out[0] == ("C: no live shopify_square image (it failed the gate, or the channel was not rendered "
                                "for it); live on google_merchant")


def test_shopify_variants_share_their_product_gallery_and_a_variant_photo_stays_its_own(tmp_path):
    gallery = [(f"{BASE}/m/1.jpg", "front"), (f"{BASE}/m/2.jpg", "side")]
    rows = [Listing(sku="MUG-RED", title="Mug", handle="mug", images=gallery, main_source="front.jpg"),
            Listing(sku="MUG-BLU", title="Mug", handle="mug", images=[(f"{BASE}/b/1.jpg", "front")] + gallery[1:],
                    main_source="front.jpg"),
            Listing(sku="MUG-GRN", title="Mug", handle="mug", images=[(f"{BASE}/g/1.jpg", "green")], main_source="green.jpg")]
    path = tmp_path / "shopify.csv"
    path.write_text(shopify_csv(rows))
    assert _read_back(path, "shopify") == {"MUG-RED": [u for u, _ in gallery], "MUG-BLU": [u for u, _ in gallery],
                                           "MUG-GRN": [f"{BASE}/g/1.jpg"]}


@pytest.mark.slow
def test_a_products_angles_from_one_shoot_keep_the_main_photos_scale(tmp_path):
    from tests.support.images import studio_photo, to_bytes

    img = tmp_path / "img"
    img.mkdir()
    shots = {"front.jpg": studio_photo(1000, 1000, seed=1, box=(300, 150, 700, 850))[0],  # 400 x 700: the main view
             "back.jpg": studio_photo(1000, 1000, seed=2, box=(400, 500, 600, 850))[0],  # the same shoot, half the size
             "other.jpg": studio_photo(600, 800, seed=3, box=(100, 80, 500, 760))[0]}  # another camera: framed by itself
    for name, im in shots.items():
        (img / name).write_bytes(to_bytes(im, "JPEG", quality=92))
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,title,category,images,color,material\n"
                       "SET-1,Mug,kitchen,img/front.jpg|img/back.jpg|img/other.jpg,teal,stoneware\n")
    out = tmp_path / "out"
    s = run_plain(str(catalog), ACME, str(out))
    assert s.failed == 0 and s.published == 9, [(f["channel"], f["reason"]) for f in s.failures]
    entries = _entries(out)
    fill = {k: entries[f"SET-1/{'shopify_square' if k == 1 else f'shopify_square-{k}'}"]["metrics"]["fill_longest"] for k in (1, 2, 3)}
    assert fill[1] == pytest.approx(0.80, abs=0.01)  # the main photo at the channel's fill
    assert fill[2] == pytest.approx(fill[1] * 350 / 700, abs=0.02)  # the back at the front's scale: half as tall
    assert fill[3] == pytest.approx(0.80, abs=0.01)
    assert entries["SET-1/shopify_square-2"]["placement"]["main_box"] == pytest.approx([400, 700], abs=6)
    assert "main_box" not in entries["SET-1/shopify_square-3"]["placement"]
    parts = RunState.of(Store(str(out))).consistency("acme-home")["channels"]["shopify_square"]["parts"]
    assert "fill" not in parts and parts["background"]["score"] > 0.9  # fill: main images only; background: every photo
    second = entries["SET-1/amazon_main-2"]  # under Amazon's 85 % for a main image: a warning on an additional photo
    assert second["qc"] == "warned" and any(r.startswith("[warn] amazon-fill") for r in second["qc_reasons"])

    # a new back photo re-renders only the back; a new front re-renders the front and the back (framed by it)
    shots["back.jpg"] = studio_photo(1000, 1000, seed=4, box=(380, 450, 620, 850))[0]
    (img / "back.jpg").write_bytes(to_bytes(shots["back.jpg"], "JPEG", quality=92))
    assert run_plain(str(catalog), ACME, str(out)).generated == 3
    (img / "front.jpg").write_bytes(to_bytes(studio_photo(1000, 1000, seed=5, box=(300, 150, 700, 850))[0], "JPEG", quality=92))
    assert run_plain(str(catalog), ACME, str(out)).generated == 6


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_lightbox_run_retires_a_removed_photo_through_the_flow_and_says_so(tmp_path, capsys):
    from flows.cli import main

    out = tmp_path / "out"
    args = ["--brand", ACME, "--out", str(out)]
    assert main(["run", str(make_gallery_catalog(tmp_path / "c1")), *args]) == 0
    first = capsys.readouterr().out
    assert "27 generated" in first and "27 published" in first
    dropped = make_gallery_catalog(tmp_path / "c2", drop={"GAL-MUG-RED": "acm-cup-013.png"})
    assert main(["run", str(dropped), *args]) == 0  # the unchanged-run shortcut must not skip a retirement
    said = capsys.readouterr().out
    assert "0 generated" in said and "retired: 3 images of photos the catalog no longer has or the gallery cap leaves out (GAL-MUG-RED)" in said
    assert not list((out / "acme-home" / "GAL-MUG-RED").glob("*-3.jpg"))
    assert len(list((out / "acme-home" / "GAL-MUG-TEAL").glob("*-3.jpg"))) == 3
    summary = json.loads((out / "acme-home" / "latest-run.json").read_text())
    run = json.loads(Path(summary["summary"]).read_text())
    assert sorted(r["channel"] for r in run["retired"]) == sorted(CHANNELS)
    assert main(["run", str(dropped), *args]) == 0
    assert "nothing to render" in capsys.readouterr().out


def test_a_products_other_photos_never_go_live_without_its_main_image(tmp_path):
    from lightbox.quality import MAIN_HELD
    from tests.support.images import studio_photo, to_bytes

    img = tmp_path / "img"
    img.mkdir()
    (img / "thumb.jpg").write_bytes(to_bytes(studio_photo(120, 160, seed=3, box=(30, 32, 90, 128))[0], "JPEG"))  # fails upscale
    (img / "good.jpg").write_bytes(to_bytes(studio_photo(800, 1000, seed=1)[0], "JPEG", quality=92))
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,title,category,images,color,material\n"
                       "BAD-MAIN,Mug,kitchen,img/thumb.jpg|img/good.jpg,teal,stoneware\n"
                       "GOOD-1,Mug,kitchen,img/good.jpg,teal,stoneware\n")
    out = tmp_path / "out"
    s = run_plain(str(catalog), ACME, str(out))
    assert not (out / "acme-home" / "BAD-MAIN").exists()  # nothing of it live: not its main, not its second photo
    assert s.to_review == 6 and s.published == 3
    records = [json.loads(line) for line in (out / "acme-home" / "_review" / s.run_id / "records.jsonl").read_text().splitlines()]
    held = [r for r in records if r["sku"] == "BAD-MAIN" and r["photo"] == 2]
    assert len(held) == 3 and all(MAIN_HELD in r["qc_reasons"] for r in held)
