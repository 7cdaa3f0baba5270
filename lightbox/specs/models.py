"""Typed models for brand specs and channel presets (parsed once, at the edge, from YAML)."""

from __future__ import annotations

import hashlib
import json
import re
import string
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RGB = tuple[int, int, int]
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
FILL_MARGIN = 0.01  # a locked fill sits this far inside a channel's fill rule: framing rounds to whole pixels


def parse_color(value: Any) -> RGB:
    """'#RRGGBB' or [r, g, b] -> (r, g, b). Anything else raises ValueError naming the value."""
    if isinstance(value, str):
        m = _HEX.match(value.strip())
        if not m:
            raise ValueError(f"colour must be '#RRGGBB', got {value!r}")
        h = m.group(1)
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, int) for v in value):
        if not all(0 <= v <= 255 for v in value):
            raise ValueError(f"colour components must be 0..255, got {list(value)!r}")
        return (value[0], value[1], value[2])
    raise ValueError(f"colour must be '#RRGGBB' or [r, g, b], got {value!r}")


Color = Annotated[RGB, Field(description="'#RRGGBB' or [r, g, b]")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SolidBackground(_Model):
    kind: Literal["solid"] = Field("solid", description="solid (the default when a bare colour is given)")
    color: Color = Field(description="'#RRGGBB' or [r, g, b]")

    @field_validator("color", mode="before")
    @classmethod
    def _color(cls, v: Any) -> RGB:
        return parse_color(v)


class GradientBackground(_Model):
    """Vertical gradient from ``top`` to ``bottom`` (a soft studio sweep)."""

    kind: Literal["gradient"] = Field(description="gradient")
    top: Color = Field(description="colour at the top")
    bottom: Color = Field(description="colour at the bottom")

    @field_validator("top", "bottom", mode="before")
    @classmethod
    def _color(cls, v: Any) -> RGB:
        return parse_color(v)


Background = Annotated[Union[SolidBackground, GradientBackground], Field(discriminator="kind")]


def _background_shorthand(v: Any) -> Any:
    """A bare colour ('#FFFFFF' or [r, g, b]) means a solid background."""
    if isinstance(v, (str, list, tuple)):
        return {"kind": "solid", "color": v}
    return v


class Shadow(_Model):
    """Soft contact shadow under the product (an ellipse, blurred, multiplied into the background)."""

    enabled: bool = Field(True, description="draw the contact shadow (channels with shadow: false and transparent ones never do)")
    opacity: float = Field(0.28, ge=0.0, le=1.0, description="darkness at its centre (0-1)")
    width: float = Field(0.85, gt=0.0, le=1.5, description="ellipse width / product width")
    height: float = Field(0.07, gt=0.0, le=0.5, description="ellipse height / product width")
    blur: float = Field(0.025, ge=0.0, le=0.2, description="blur radius / product width")


class Framing(_Model):
    fill: float | None = Field(None, gt=0.3, le=1.0, description="overrides the channel's fill")
    placement: Literal["center", "bottom"] = Field("center", description="center: centred; bottom: standing on a floor line")


class SegmentationModel(_Model):
    """A learned segmentation model for the cut-out: a transformers checkpoint (BiRefNet family, through
    ``AutoModelForImageSegmentation``) or an ONNX export (BiRefNet, IS-Net, U2-Net) run by onnxruntime."""

    path: str = Field(description="local directory (transformers), .onnx file, or Hugging Face id (with revision)")
    revision: str | None = Field(None, description="Hub revision (commit, tag or branch); remote code is trusted only for it")
    format: Literal["auto", "transformers", "onnx"] = Field("auto", description="auto: .onnx files are ONNX, anything else transformers")
    input_size: int | None = Field(None, ge=64, le=4096, description="square input side; default: the model's (ONNX input shape, config) or 1024")
    mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), description="input normalisation mean (R, G, B)")
    std: tuple[float, float, float] = Field((0.229, 0.224, 0.225), description="input normalisation spread (R, G, B)")
    output: Literal["auto", "logits", "probabilities"] = Field("auto", description="auto: sigmoid unless every value is within 0..1")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field("auto", description="where it runs: auto picks cuda, then mps, then cpu")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field("auto", description="weights' precision: auto is float16 on a GPU, float32 on a CPU")
    batch_size: int = Field(4, ge=1, le=64, description="photos per forward pass (halved on out-of-memory)")
    fallback: Literal["fail", "backdrop"] = Field(
        "fail", description="when the model cannot load: fail the run at start, or cut with the backdrop method and refuse the rest")

    def identity(self) -> dict[str, Any]:
        """What decides the mask (not where or how fast it runs): part of every output's fingerprint."""
        return self.model_dump(mode="json", include={"path", "revision", "format", "input_size", "mean", "std", "output"})


class Cutout(_Model):
    """How the product is separated from its photo.

    ``method``: ``alpha`` (the photo's own transparency), ``backdrop`` (a plain studio backdrop, fitted and
    keyed), ``model`` (a learned segmentation model), or ``auto``: alpha for real transparency, backdrop
    only when a measured test says the photo's border is a plain backdrop and the cut is sure, else the
    model; with no model such a product is refused (or flagged for review when the backdrop cut is unsure).
    The remaining fields tune the backdrop method."""

    method: Literal["auto", "alpha", "backdrop", "model"] = Field("auto", description="auto, alpha, backdrop or model (see above)")
    model: SegmentationModel | None = Field(
        default_factory=lambda: SegmentationModel(path="bundled:u2netp"),
        description="segmentation model for photos the backdrop method cannot cut; default: the bundled U2-Netp "
                    "(lightbox/models), null for none")
    min_confidence: float = Field(0.9, ge=0.0, le=1.0, description="model cuts below this confidence go to review, never live")
    threshold: float = Field(26.0, ge=4.0, le=128.0, description="ceiling of the adaptive threshold")
    min_threshold: float = Field(8.0, ge=2.0, le=64.0, description="floor of the adaptive threshold")
    noise_factor: float = Field(6.0, ge=1.0, le=20.0, description="threshold = noise_factor x backdrop noise")
    shadow_depth: float = Field(0.45, ge=0.0, le=0.8, description="hue-neutral darkening treated as backdrop shadow")
    feather: float = Field(2.0, ge=0.0, le=8.0, description="edge band on each side of the mask, in source pixels")
    min_object_share: float = Field(0.002, ge=0.0, le=0.2, description="drop specks smaller than this share")
    holes: Literal["auto", "keep", "backdrop"] = Field(
        "auto", description="enclosed backdrop regions: auto clears those that match the fitted backdrop; keep; or clear all near it")
    min_hole_share: float = Field(0.0005, ge=0.0, le=0.2, description="smallest enclosed region cleared as a hole")
    max_backdrop_noise: float = Field(5.0, ge=0.5, le=40.0, description="plain-backdrop test: robust spread of the border's fit residuals (levels)")
    min_backdrop_fit: float = Field(0.9, ge=0.5, le=1.0, description="plain-backdrop test: share of the border the fitted backdrop explains")
    min_edge_contrast: float = Field(0.97, ge=0.0, le=1.0, description="share of the outline with contrast under which a backdrop cut is unsure")
    matting: Literal["refine", "none"] = Field("refine", description="model masks: the edge band refined on the model's outline and its colour recovered (no old-background rim); none: the model's mask as it is")

    @model_validator(mode="after")
    def _model_needed(self) -> "Cutout":
        if self.method == "model" and self.model is None:
            raise ValueError("method 'model' needs cutout.model (a local directory, .onnx file or Hub id)")
        if self.min_threshold > self.threshold:
            raise ValueError(f"min_threshold ({self.min_threshold}) is above threshold ({self.threshold})")
        return self

    def identity(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json", exclude={"model"})
        doc["model"] = self.model.identity() if self.model else None
        return doc


class Lora(_Model):
    path: str = Field(description="local directory or file of LoRA weights (diffusers/peft format)")
    scale: float = Field(0.8, ge=0.0, le=2.0, description="LoRA strength")


class Diffusion(_Model):
    """The AI engine: which diffusers model, how it runs, what to do when it cannot."""

    model: str = Field(description="inpainting pipeline: local directory or Hugging Face id")
    revision: str | None = Field(None, description="Hub revision (commit, tag or branch)")
    text_to_image_model: str | None = Field(None, description="pipeline for products without a photo; default: model")
    text_to_image: bool = Field(False, description="render products without a source photo from their attributes")
    scheduler: str | None = Field(None, description="diffusers scheduler class, e.g. DPMSolverMultistepScheduler")
    steps: int = Field(25, ge=1, le=200, description="denoising steps")
    guidance: float = Field(7.0, ge=0.0, le=30.0, description="classifier-free guidance scale")
    strength: float = Field(1.0, gt=0.0, le=1.0, description="how much of the background is repainted (1.0: all of it)")
    resolution: int = Field(512, ge=64, le=2048, description="working size of the longer side (multiple of 8)")
    batch_size: int = Field(4, ge=1, le=64, description="images per pipeline call (halved on out-of-memory)")
    variants: int = Field(1, ge=1, le=8, description="scenes per product and channel, each with its own seed")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field("auto", description="where it runs: auto picks cuda, then mps, then cpu")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field("auto", description="weights' precision: auto is float16 on a GPU, float32 on a CPU")
    require: Literal["any", "accelerator"] = Field("any", description="'accelerator': CPU alone does not meet the spec")
    attention_slicing: bool = Field(False, description="lower memory, slower (diffusers' enable_attention_slicing)")
    vae_tiling: bool = Field(False, description="decode large images in tiles (lower memory)")
    cpu_offload: bool = Field(False, description="keep idle sub-models on the CPU (lowest GPU memory, slower)")
    lora: Lora | None = Field(None, description="LoRA weights loaded into the pipeline")
    fallback: Literal["studio", "fail"] = Field("studio", description="when the model cannot load or no device meets 'require'")
    concurrency_limit: str = Field("gpu", description="Prefect global concurrency limit held while generating")
    concurrency_slots: int = Field(1, ge=1, le=64, description="slots the limit gets when Lightbox creates it")

    @field_validator("resolution")
    @classmethod
    def _multiple_of_8(cls, v: int) -> int:
        if v % 8:
            raise ValueError(f"must be a multiple of 8, got {v}")
        return v

    def identity(self) -> dict[str, Any]:
        """What decides the pixels (not how fast they come): part of every AI output's fingerprint."""
        return self.model_dump(
            mode="json",
            include={"model", "revision", "text_to_image_model", "scheduler", "steps", "guidance", "strength", "resolution", "lora"},
        )


class Template(_Model):
    """Per-category look. Unset fields inherit from the spec's top level."""

    engine: Literal["studio", "diffusers"] | None = Field(None, description="overrides the brand's engine")
    background: Background | None = Field(None, description="overrides the brand's background")
    shadow: Shadow | None = Field(None, description="overrides the brand's shadow")
    framing: Framing | None = Field(None, description="overrides the brand's framing")
    cutout: Cutout | None = Field(None, description="the cut-out for this category (the whole block replaces the spec's)")
    alt_text: str = Field("{title}", description="alt text of every image, with {attribute} placeholders (title, sku, category or any catalog column)")
    prompt: str | None = Field(None, description="the AI scene's prompt, with {attribute} placeholders (diffusers engine)")
    negative_prompt: str | None = Field(None, description="what the AI scene must not show")

    _bg = field_validator("background", mode="before")(lambda v: _background_shorthand(v))

    @field_validator("alt_text", "prompt", "negative_prompt")
    @classmethod
    def _template_parses(cls, v: str | None) -> str | None:
        if v is not None:
            template_fields(v)  # raises ValueError on malformed braces
        return v


class ReviewPause(_Model):
    """Wait for an operator's decision on flagged outputs before the manifest is committed."""

    enabled: bool = Field(False, description="pause the run for an operator's decision when outputs fail the gate")
    timeout_s: int = Field(3600, ge=1, le=7 * 24 * 3600, description="after this, flagged outputs stay unpublished")


class Gallery(_Model):
    """How many of a product's photos are rendered per channel (its main image and additional photos)."""

    max: int | None = Field(None, ge=1, le=250, description="at most this many photos of a product per channel, the "
                            "main image included (1: the main image only); default: as many as each channel takes")
    channels: dict[str, int] = Field(default_factory=dict, description="channel -> its own cap (overrides max)")
    ai: Literal["main", "all"] = Field("main", description="which photos get an AI scene where the look has one: the main "
                                      "image only (default; additional photos are studio renders), or all of them")

    @field_validator("channels")
    @classmethod
    def _caps(cls, v: dict[str, int]) -> dict[str, int]:
        for name, n in v.items():
            if not isinstance(n, int) or not 1 <= n <= 250:
                raise ValueError(f"{name}: must be a whole number from 1 to 250, got {n!r}")
        return v


class QualityPolicy(_Model):
    max_invalid_share: float = Field(0.2, ge=0.0, le=1.0, description="fail the run above this share of invalid rows")
    max_failed_share: float = Field(0.2, ge=0.0, le=1.0, description="quality alarm (exit 3) above this share of the run's outputs (rendered or unchanged) failing the gate; "
                                    "the run fails (exit 1) above this share of outputs that could not be rendered")
    alert_block: str | None = Field(
        None, description="Prefect notification block told about an alarm, as 'block-type-slug/name', e.g. 'custom-webhook/lightbox-alerts'"
    )
    review_pause: ReviewPause = Field(ReviewPause(), description="an operator decides on flagged outputs before the run ends")


class BrandSpec(_Model):
    name: str = Field(description="slug: lower-case letters, digits, '-'; used as the output prefix")
    version: int = Field(ge=1, description="the spec's version: raise it to re-render everything (it seeds AI outputs and is in the report)")
    description: str = Field("", description="free text for people")
    engine: Literal["studio", "diffusers"] = Field("studio", description="studio: the cut-out on the brand background (CPU); diffusers: an AI scene around the real photo (needs diffusion)")
    diffusion: Diffusion | None = Field(None, description="the AI engine's model and settings (needed when an engine is diffusers)")
    background: Background = Field(SolidBackground(color=(255, 255, 255)), description="the studio background: a colour ('#F7F5F2', [r, g, b]) or {kind: gradient, top, bottom}; channels that force one (Amazon's white) win")
    shadow: Shadow = Field(Shadow(), description="the contact shadow under the product")
    framing: Framing = Field(Framing(), description="how large and where the product sits in the frame")
    cutout: Cutout = Field(Cutout(), description="how the product is separated from its photo")
    gallery: Gallery = Field(Gallery(), description="how many of a product's photos each channel gets")
    templates: dict[str, Template] = Field(default_factory=lambda: {"default": Template()}, description="per-category looks: a template overrides the brand's engine, background, shadow, framing or cut-out, and sets alt text and prompts")
    categories: dict[str, str] = Field(description="catalog category -> template name")
    fallback_template: str | None = Field(
        None, description="template for catalog categories not listed in categories (default: none; such rows are quarantined)")
    channels: list[str] = Field(min_length=1, description="the channels rendered (lightbox/presets/channels.yaml: amazon_main, walmart_main, shopify_square, google_merchant, ebay_listing, etsy_listing, web_transparent)")
    duplicate_images: Literal["warn", "quarantine"] = Field("warn", description="a main photo several rows use: warn (render each) or quarantine those rows (a gallery's other photos may be shared)")
    value_sets: dict[str, list[str]] = Field(default_factory=dict, description="attribute -> allowed values")
    quality: QualityPolicy = Field(QualityPolicy(), description="thresholds of the run: invalid rows, failed outputs, alert, review pause")
    max_source_pixels: int = Field(60_000_000, ge=1_000_000, le=400_000_000, description="larger source photos are refused (a decompression bomb guard)")

    _bg = field_validator("background", mode="before")(lambda v: _background_shorthand(v))

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError(f"must be a slug (a-z, 0-9, '-'), got {v!r}")
        return v

    @model_validator(mode="after")
    def _references(self) -> "BrandSpec":
        for category, tpl in self.categories.items():
            if tpl not in self.templates:
                raise ValueError(
                    f"categories.{category}: unknown template {tpl!r} (templates: {', '.join(sorted(self.templates))})"
                )
        if self.fallback_template is not None and self.fallback_template not in self.templates:
            raise ValueError(f"fallback_template: unknown template {self.fallback_template!r} "
                             f"(templates: {', '.join(sorted(self.templates))})")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels: listed twice: {self.channels!r}")
        if extra := sorted(set(self.gallery.channels) - set(self.channels)):
            raise ValueError(f"gallery.channels: {', '.join(map(repr, extra))} not in channels ({', '.join(self.channels)})")
        uses_ai = self.engine == "diffusers" or any(t.engine == "diffusers" for t in self.templates.values())
        if uses_ai and self.diffusion is None:
            raise ValueError("engine 'diffusers' needs a 'diffusion' section (model, steps, ...)")
        for name, tpl in self.templates.items():
            if (tpl.engine or self.engine) == "diffusers" and not tpl.prompt:
                raise ValueError(f"templates.{name}: engine 'diffusers' needs a prompt")
        return self

    def gallery_size(self, channel: "ChannelPreset") -> int:
        """How many photos of a product ``channel`` gets: the brand's cap for it, never more than it takes."""
        cap = self.gallery.channels.get(channel.name, self.gallery.max)
        return channel.gallery if cap is None else min(cap, channel.gallery)

    def engine_for(self, category: str) -> str:
        return self.template_for(category).engine or self.engine

    def knows(self, category: str) -> bool:
        """Whether rows of this category are rendered (listed, or taken by the fallback template)."""
        return category in self.categories or self.fallback_template is not None

    def template_name(self, category: str) -> str:
        """The category's template: listed in categories, else the fallback. KeyError when neither."""
        name = self.categories.get(category, self.fallback_template)
        if name is None:
            raise KeyError(category)
        return name

    def template_names(self) -> set[str]:
        """Every template a category can reach (the fallback included)."""
        return set(self.categories.values()) | ({self.fallback_template} if self.fallback_template else set())

    def template_for(self, category: str) -> Template:
        return self.templates[self.template_name(category)]

    def cutout_for(self, category: str) -> Cutout:
        return self.template_for(category).cutout or self.cutout

    def segmentation_models(self) -> list[SegmentationModel]:
        """The distinct segmentation models the spec's cut-outs use (spec level and templates)."""
        found: dict[str, SegmentationModel] = {}
        for c in [self.cutout, *(t.cutout for t in self.templates.values() if t.cutout)]:
            if c.model is not None and c.method in ("auto", "model"):
                found.setdefault(json.dumps(c.model.model_dump(mode="json"), sort_keys=True), c.model)
        return list(found.values())

    def fields_used(self, category: str) -> set[str]:
        """Product fields the category's templates read (alt text, prompts)."""
        tpl = self.template_for(category)
        out: set[str] = set()
        for text in (tpl.alt_text, tpl.prompt, tpl.negative_prompt):
            if text:
                out |= template_fields(text)
        return out


class Rule(_Model):
    id: str
    metric: str
    op: Literal[">=", "<=", "==", "!=", "in"]
    value: Any
    severity: Literal["fail", "warn"] = "fail"
    when: Literal["any", "studio", "ai", "cut"] = Field(
        "any", description="which outputs the rule applies to (cut: outputs made from a cut-out photo)")
    source: str = Field(description="where the number comes from (a marketplace's page, or 'house: ...')")
    role: Literal["any", "main"] = Field(
        "any", description="main: the rule holds at its severity for a product's main image only and is a warning "
        "on its additional photos (Amazon: pure white and 85 % fill for the main image, preferred for the rest)")

    def severity_for(self, role: str) -> str:
        """The rule's severity on an output of this role (``main`` or ``additional``)."""
        return self.severity if self.role == "any" or role == "main" else "warn"

    def applies(self, ai_generated: bool, from_photo: bool = True) -> bool:
        if self.when == "cut":
            return from_photo
        return self.when == "any" or (self.when == "ai") == ai_generated

    def check(self, measured: Any) -> bool:
        v = self.value
        if self.op == ">=":
            return measured >= v
        if self.op == "<=":
            return measured <= v
        if self.op == "==":
            return measured == v
        if self.op == "!=":
            return measured != v
        return measured in v

    def describe(self, measured: Any, metrics: dict[str, Any] | None = None) -> str:
        """``id: what is wrong, in words`` for a measured value that fails the rule (``metrics``: the output's
        other measures, for context such as why a cut-out is unsure)."""
        return f"{self.id}: {_in_words(self, measured, metrics or {})}"


_OPS = {">=": "at least", "<=": "at most", "==": "", "!=": "not", "in": "one of"}


def _in_words(rule: Rule, m: Any, metrics: dict[str, Any]) -> str:
    """A failed rule's measure said for people: what was measured, and what the channel allows."""
    v, op = rule.value, _OPS[rule.op]
    if isinstance(m, bool) or isinstance(v, bool):
        said = {
            ("cutout_confident", False): "the cut-out is not sure of its outline"
            + (f" ({metrics['cutout_reason'].split('unsure: ', 1)[1]})" if "unsure: " in str(metrics.get("cutout_reason", "")) else ""),
            ("touches_frame", True): "the product touches the edge of the frame (cropped?)",
            ("product_present", False): "no product found in the image (it covers under 1 % of the frame)",
            ("has_alpha", False): "the image has no transparency",
        }.get((rule.metric, m))
        return said or f"{rule.metric} is {'yes' if m else 'no'}, must be {'yes' if v else 'no'}"
    if not isinstance(m, (int, float)) or not isinstance(v, (int, float)):
        return f"{rule.metric} is {m!r}, must be {op + ' ' if op else ''}{v!r}"
    words = {
        "upscale": f"enlarged {m:.1f}x, more than the {v:g}x this channel allows" if rule.op == "<="
        else f"enlarged {m:.1f}x, must be {op} {v:g}x",
        "fidelity": f"the product's pixels differ from the cut-out by {m:.1f} levels on average ({op} {v:g} allowed)",
        "fidelity_source": f"the product's pixels differ from the source photo by {m:.1f} levels on average ({op} {v:g} allowed)",
        "sharpness": f"the product looks soft (sharpness {m:.1f}, {op} {v:g} wanted)",
        "background_detail": f"{m:.2%} of the background is not plain (text, a border, a watermark?); {op} {v:.2%} allowed",
        "cutout_holes": f"{m:.1%} of the product is backdrop seen through it (a hole kept in the backdrop's colour); "
                        f"{op} {v:.1%} allowed",
        "cutout_borders": f"the cut runs into {m} sides of its photo ({op} {v} allowed)",
        "cutout_edge_contrast": f"only {m:.0%} of the outline has contrast across it ({op} {v:.0%} wanted): a leak or kept scene?",
        "cutout_raggedness": f"the outline is ragged ({m:.2f}x its smoothed length, {op} {v:g} allowed)",
        "cutout_share": f"the cut covers {m:.1%} of its photo (must be {op} {v:.1%})",
        "clipped_highlights": f"{m:.0%} of the product is clipped at white ({op} {v:.0%} allowed)",
        "clipped_shadows": f"{m:.0%} of the product is crushed to black ({op} {v:.0%} allowed)",
        "fill_longest": f"the product fills {m:.0%} of the frame (must be {op} {v:.0%})",
        "luma_std": f"the image is almost one colour (spread {m:.1f} levels, {op} {v:g} wanted): blank?",
    }
    if rule.metric in words:
        return words[rule.metric]
    shown = f"{m:.4g}" if isinstance(m, float) else str(m)
    return f"{rule.metric} is {shown}, must be {op + ' ' if op else ''}{v!r}"


class RulePack(_Model):
    name: str
    title: str
    rules: list[Rule]


class ChannelPreset(_Model):
    name: str
    title: str
    width: int = Field(ge=64, le=10000)
    height: int = Field(ge=64, le=10000)
    format: Literal["jpeg", "png", "webp"]
    quality: int = Field(90, ge=1, le=100)
    background: Color | Literal["transparent"] | None = None
    fill: float = Field(gt=0.3, le=1.0)
    shadow: bool = True
    rule_packs: list[str] = Field(default_factory=list, description="packs from lightbox/presets/rules/")
    rules: list[Rule] = Field(default_factory=list, description="the channel's own extra rules")
    gallery: int = Field(10, ge=1, le=250, description="the most photos of one product the channel takes, its main image "
                         "included (Amazon: a main image and 8 more)")

    @field_validator("background", mode="before")
    @classmethod
    def _bg(cls, v: Any) -> Any:
        if v is None or v == "transparent":
            return v
        return parse_color(v)

    def fill_bounds(self, role: str = "main") -> tuple[float, float]:
        """The fill the channel's failing rules on ``fill_longest`` allow an image of ``role`` (Amazon: at least
        85 % of the frame for a main image), a point inside each bound: a brand's or template's fill is held
        within them, as the channel's background is (``resolve_look``), so a spec cannot ask for a frame its own
        channel then fails."""
        lo, hi = 0.0, 1.0
        for r in self.rules:
            if r.severity_for(role) == "fail" and r.metric == "fill_longest" and isinstance(r.value, int | float):
                if r.op == ">=":
                    lo = max(lo, float(r.value) + FILL_MARGIN)
                elif r.op == "<=":
                    hi = min(hi, float(r.value) - FILL_MARGIN)
        return lo, hi

    @model_validator(mode="after")
    def _transparent_needs_alpha(self) -> "ChannelPreset":
        if self.background == "transparent" and self.format == "jpeg":
            raise ValueError("background 'transparent' needs format png or webp, not jpeg")
        return self

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg", "png": "png", "webp": "webp"}[self.format]


class Generation(_Model):
    """The AI part of a look: model identity and the prompt templates (filled per product later)."""

    diffusion: Diffusion
    prompt: str
    negative_prompt: str = ""


class Look(_Model):
    """Everything that decides one channel's pixels for one category: hashed into fingerprints."""

    engine: str
    generation: Generation | None = None
    background: Background | Literal["transparent"]
    shadow: Shadow
    fill: float
    placement: str
    cutout: Cutout
    channel: ChannelPreset

    def digest(self) -> str:
        """Hash of what decides the pixels: batch size, device or memory options do not count."""
        doc = self.model_dump(mode="json")
        for key in ("rules", "rule_packs", "title", "gallery"):  # rules judge pixels, they do not make them
            doc["channel"].pop(key, None)
        if self.generation is not None:
            doc["generation"]["diffusion"] = self.generation.diffusion.identity()
        doc["cutout"] = self.cutout.identity()
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def resolve_look(spec: BrandSpec, category: str, channel: ChannelPreset) -> Look:
    """The effective look of ``category`` on ``channel``: channel locks win, then template, then spec."""
    tpl = spec.template_for(category)
    if channel.background is None:
        background: Any = tpl.background or spec.background
    elif channel.background == "transparent":
        background = "transparent"
    else:
        background = SolidBackground(color=channel.background)
    shadow = tpl.shadow or spec.shadow
    if not channel.shadow or background == "transparent":
        shadow = shadow.model_copy(update={"enabled": False})
    framing = tpl.framing or spec.framing
    lo, hi = channel.fill_bounds()  # a marketplace's fill rule is a lock, like its background
    engine = tpl.engine or spec.engine
    generation = None
    # A channel that locks its background (Amazon's pure white) gets no AI scene: studio render there.
    if engine == "diffusers" and channel.background is None and spec.diffusion is not None:
        generation = Generation(diffusion=spec.diffusion, prompt=tpl.prompt or "", negative_prompt=tpl.negative_prompt or "")
    else:
        engine = "studio"
    return Look(
        engine=engine,
        generation=generation,
        background=background,
        shadow=shadow,
        fill=min(max(framing.fill if framing.fill is not None else channel.fill, lo), hi),
        placement=framing.placement,
        cutout=tpl.cutout or spec.cutout,
        channel=channel,
    )


def template_fields(text: str) -> set[str]:
    """Names used as ``{name}`` placeholders. Raises ValueError on malformed braces or ``{}``."""
    names: set[str] = set()
    for _, field, _, _ in string.Formatter().parse(text):
        if field is None:
            continue
        if not field.isidentifier():
            raise ValueError(f"placeholder {{{field}}} in {text!r} must be a plain attribute name")
        names.add(field)
    return names
