from pathlib import Path

import pytest

from lightbox.errors import SpecError
from lightbox.specs import load_brand_spec, load_channel_presets, resolve_look, spec_channels
from lightbox.specs.models import GradientBackground, SolidBackground, parse_color, template_fields
from tests.conftest import ACME, REPO, TRAILHEAD


@pytest.mark.parametrize("path", sorted(str(p) for p in (REPO / "brand_specs").glob("*.yaml")))
def test_shipped_specs_load(path):
    spec = load_brand_spec(path)
    assert spec.channels and all(c in load_channel_presets() for c in spec.channels)
    for category in spec.categories:
        assert spec.template_for(category) is not None


def test_amazon_channel_locks_white_background_over_brand_gradient():
    spec = load_brand_spec(ACME)
    amazon, shopify, _ = spec_channels(spec)
    assert isinstance(spec.background, GradientBackground)
    assert resolve_look(spec, "kitchen", amazon).background == SolidBackground(color=(255, 255, 255))
    assert resolve_look(spec, "kitchen", shopify).background == spec.background
    # a template's own background applies where the channel does not lock one
    assert resolve_look(spec, "lighting", shopify).background.top == (242, 240, 238)


def test_transparent_channel_disables_shadow():
    spec = load_brand_spec(TRAILHEAD)
    web = load_channel_presets()["web_transparent"]
    look = resolve_look(spec, "bags", web)
    assert look.background == "transparent" and not look.shadow.enabled


def test_fields_used_come_from_templates():
    spec = load_brand_spec(ACME)
    assert spec.fields_used("tableware") == {"title", "color", "material"}


@pytest.mark.parametrize(
    "value, expected",
    [("#FFFFFF", (255, 255, 255)), ("0a0B0c", (10, 11, 12)), ([1, 2, 3], (1, 2, 3))],
)
def test_parse_color(value, expected):
    assert parse_color(value) == expected


@pytest.mark.parametrize("value", ["#FFF", "white", [1, 2], [0, 0, 256], None])
def test_parse_color_rejects(value):
    with pytest.raises(ValueError, match="colour"):
        parse_color(value)


def test_template_fields_rejects_expressions():
    assert template_fields("{title} in {color}") == {"title", "color"}
    with pytest.raises(ValueError, match="plain attribute name"):
        template_fields("{title.upper}")


def _write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "brand.yaml"
    p.write_text(text)
    return str(p)


BASE = """
name: test-brand
version: 1
categories: {mugs: default}
channels: [amazon_main]
"""


@pytest.mark.parametrize(
    "patch, message",
    [
        ("channels: [amazn_main]", r"channels\.0: unknown channel 'amazn_main' \(known: amazon_main"),
        ("name: Test Brand", r"name: must be a slug .*got 'Test Brand'"),
        ("version: 0", r"version: Input should be greater than or equal to 1"),
        ("categories: {mugs: kitchen}", r"categories\.mugs: unknown template 'kitchen'"),
        ("background: '#GGGGGG'", r"colour must be '#RRGGBB', got '#GGGGGG'"),
        ("shadow: {opacity: 3}", r"shadow\.opacity: Input should be less than or equal to 1"),
        ("colour_grade: warm", r"colour_grade: unknown key \(known: "),
        ("backgroud: '#FFFFFF'", r"backgroud: unknown key - did you mean 'background'\?"),
        ("shadow: {enabeld: true}", r"shadow\.enabeld: unknown key - did you mean 'enabled'\?"),
        ("background: {kind: soild, color: '#FFFFFF'}", r"background: kind 'soild' is unknown \(one of gradient, solid\)"),
        ("background: '#FBF8F'", r"colour must be '#RRGGBB', got '#FBF8F'$"),
        ("templates: {default: {alt_text: '{title'}}", r"templates\.default\.alt_text"),
        ("fallback_template: other", r"fallback_template: unknown template 'other' \(templates: default\)"),
        ("shadow: {enabled: true, opacity: 0,30}", r"shadow: unexpected key 30 - a decimal comma\? .*write 0\.30"),
    ],
)
def test_bad_spec_names_file_field_and_reason(tmp_path, patch, message):
    key = patch.split(":")[0]
    body = "\n".join(line for line in BASE.splitlines() if not line.startswith(key + ":")) + "\n" + patch + "\n"
    path = _write(tmp_path, body)
    with pytest.raises(SpecError, match=message) as err:
        load_brand_spec(path)
    assert str(err.value).startswith(path)
    assert ": :" not in str(err.value) and "Extra inputs" not in str(err.value)  # issue 25, item 10


def test_spec_yaml_syntax_error_names_line(tmp_path):
    path = _write(tmp_path, "name: x\nchannels: [amazon_main\n")
    with pytest.raises(SpecError, match=r"not valid YAML at line \d+"):
        load_brand_spec(path)


def test_missing_spec_file():
    with pytest.raises(SpecError, match="nope.yaml: file not found"):
        load_brand_spec("nope.yaml")


def test_look_digest_changes_only_with_what_it_depends_on():
    spec = load_brand_spec(ACME)
    amazon = load_channel_presets()["amazon_main"]
    a = resolve_look(spec, "kitchen", amazon).digest()
    # the brand gradient does not reach Amazon (locked white): changing it leaves Amazon's look alone
    spec2 = spec.model_copy(update={"background": SolidBackground(color=(1, 2, 3))})
    assert resolve_look(spec2, "kitchen", amazon).digest() == a
    spec3 = spec.model_copy(update={"shadow": spec.shadow.model_copy(update={"opacity": 0.5})})
    assert resolve_look(spec3, "kitchen", amazon).digest() != a


@pytest.mark.parametrize("metric, op, value, measured, context, said", [
    ("upscale", "<=", 2.0, 3.6364, {}, "upscale-x: enlarged 3.6x, more than the 2x this channel allows"),
    ("cutout_confident", "==", True, False, {"cutout_reason": "no plain backdrop (noise 9); unsure: 23% of the mask's area is undecided"},
     "upscale-x: the cut-out is not sure of its outline (23% of the mask's area is undecided)"),
    ("touches_frame", "==", False, True, {}, "upscale-x: the product touches the edge of the frame (cropped?)"),
    ("background_detail", "<=", 0.0002, 0.0031, {},
     "upscale-x: 0.31% of the background is not plain (text, a border, a watermark?); at most 0.02% allowed"),
    ("format", "==", "PNG", "JPEG", {}, "upscale-x: format is 'JPEG', must be 'PNG'"),
    ("megapixels", ">=", 1.0, 0.5, {}, "upscale-x: megapixels is 0.5, must be at least 1.0"),
])
def test_gate_reasons_are_written_for_people(metric, op, value, measured, context, said):
    """Not `upscale 3.6364 fails <= 2.0` or `cutout_confident False fails == True`: what is wrong, and what is allowed."""
    from lightbox.specs.models import Rule

    rule = Rule(id="upscale-x", metric=metric, op=op, value=value, source="house: test")
    assert rule.describe(measured, context) == said


def test_a_marketplace_fill_rule_locks_the_fill_like_its_background():
    """The shipped trailhead spec frames footwear at 0.84; Amazon fails under 85 %: the channel holds the fill
    inside its own rule (0.86), Google inside 75-90 %, and a channel with no fill rule keeps the brand's."""
    spec = load_brand_spec(TRAILHEAD)
    presets = load_channel_presets()
    assert spec.template_for("footwear").framing.fill == 0.84
    assert resolve_look(spec, "footwear", presets["amazon_main"]).fill == pytest.approx(0.86)
    assert resolve_look(spec, "footwear", presets["walmart_main"]).fill == pytest.approx(0.86)
    assert resolve_look(spec, "footwear", presets["shopify_square"]).fill == 0.84
    wide = spec.model_copy(update={"framing": spec.framing.model_copy(update={"fill": 0.95})})
    assert resolve_look(wide, "bags", presets["google_merchant"]).fill == pytest.approx(0.89)
    assert resolve_look(wide, "bags", presets["amazon_main"]).fill == 0.95
    assert presets["shopify_square"].fill_bounds() == (0.0, 1.0)


def test_the_brand_spec_reference_is_generated_from_the_models_and_current():
    """docs/brand-spec-reference.md is written by `python -m lightbox.specs.reference`; a field added, renamed
    or described anew in lightbox/specs/models.py without regenerating it fails here."""
    from pathlib import Path

    from lightbox.specs.reference import main, reference_markdown

    page = Path(__file__).resolve().parents[2] / "docs" / "brand-spec-reference.md"
    assert main(["--check", str(page)]) == 0, "python -m lightbox.specs.reference > docs/brand-spec-reference.md"
    text = reference_markdown()
    for section in ("## BrandSpec", "## Cutout", "## Gallery", "## Diffusion", "## Template", "## QualityPolicy"):
        assert section in text
    assert "| `gallery` | [Gallery](#gallery) |" in text and "| `max` | int \\| null | `null` | ≥ 1, ≤ 250 |" in text
