"""A starter brand spec written from a catalog (``lightbox init``): valid for that catalog at once, with
comments where the brand has to decide.

What it reads from the catalog (after the layout adapters, so a Shopify, WooCommerce or Google Merchant
export is read as it is):

- every category -> a template; categories whose products share the same descriptive attributes share a
  template, named after its largest category (``default`` when there is one);
- descriptive attributes (colour, material, size, ...) filled on every product of a category, with short
  values, go into that template's alt text and prompt - never free text (descriptions, tags, barcodes);
- each such attribute's values -> a value set (so a typo in next month's export is caught), when there are
  few enough distinct values to be a vocabulary;
- a ``fallback_template`` for categories the catalog does not have yet (its alt text uses only the title).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from lightbox.specs.models import SLUG

DEFAULT_CHANNELS = ["amazon_main", "shopify_square", "google_merchant"]
# attributes that describe how a product looks, in the order alt texts name them
DESCRIPTIVE = ["color", "colour", "material", "finish", "pattern", "style", "size", "scent", "flavor", "flavour", "shape"]
NOT_DESCRIPTIVE = {"description", "barcode", "gtin", "mpn", "handle", "image_alt", "category_path", "tags", "type", "link",
                   "price", "sale_price", "availability", "condition", "brand", "vendor", "item_group_id", "id", "parent",
                   "short_description", "google_product_category", "product_type", "weight", "shipping"}
MAX_VALUE_CHARS = 40
MAX_VALUE_SET = 40
MAX_ALT_ATTRIBUTES = 2
FALLBACK = "other"


@dataclass
class Starter:
    """What ``lightbox init`` found and wrote."""

    name: str
    text: str
    categories: dict[str, str] = field(default_factory=dict)  # category -> template
    templates: dict[str, list[str]] = field(default_factory=dict)  # template -> attributes used
    value_sets: dict[str, list[str]] = field(default_factory=dict)
    products: int = 0


def brand_slug(text: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug[:63] or "my-brand"


def _descriptive(frame: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """Attributes filled on every one of ``rows``, short, and not free text; in DESCRIPTIVE order first."""
    found = []
    for col in frame.columns:
        if not col.startswith("attr_"):
            continue
        name = col[5:]
        if name in NOT_DESCRIPTIVE or not name.isidentifier():
            continue
        values = rows[col].astype(str).str.strip()
        if (values == "").any() or values.str.len().max() > MAX_VALUE_CHARS:
            continue
        found.append(name)
    rank = {n: i for i, n in enumerate(DESCRIPTIVE)}
    known = sorted((n for n in found if n in rank), key=rank.__getitem__)
    return known[:MAX_ALT_ATTRIBUTES]


def _alt_text(attributes: list[str]) -> str:
    return "{title}" + "".join(f", {{{a}}}" for a in attributes)


def _prompt(attributes: list[str]) -> str:
    described = " ".join(f"{{{a}}}" for a in attributes)
    return "{title}" + (f", {described}" if described else "") + ", on a plain studio table, soft daylight"


def starter_spec(frame: pd.DataFrame, name: str, source: str, channels: list[str] | None = None) -> Starter:
    """The starter spec's YAML text for a normalised catalog frame (see :mod:`lightbox.catalog.ingest`)."""
    if not SLUG.match(name):
        raise ValueError(f"brand name must be a slug (a-z, 0-9, '-'), got {name!r}")
    channels = channels or DEFAULT_CHANNELS
    products = frame[~frame["hero"].astype(str).str.lower().isin({"true", "yes", "1", "y"})]
    sizes = Counter(c for c in products["category"].astype(str) if c)
    groups: dict[tuple[str, ...], list[str]] = {}
    for category, _ in sizes.most_common():
        attrs = tuple(_descriptive(frame, products[products["category"] == category]))
        groups.setdefault(attrs, []).append(category)
    templates: dict[str, list[str]] = {}
    categories: dict[str, str] = {}
    for i, (attrs, cats) in enumerate(sorted(groups.items(), key=lambda kv: -sum(sizes[c] for c in kv[1]))):
        tpl = "default" if i == 0 else (brand_slug(cats[0]).replace("-", "_") or f"group_{i}")
        while tpl in templates or tpl == FALLBACK:
            tpl += "_2"
        templates[tpl] = list(attrs)
        for c in cats:
            categories[c] = tpl
    value_sets: dict[str, list[str]] = {}
    for attr in sorted({a for attrs in templates.values() for a in attrs}):
        values = sorted({str(v) for v in products[f"attr_{attr}"] if str(v).strip()})
        if 0 < len(values) <= MAX_VALUE_SET:
            value_sets[attr] = values

    q = json.dumps  # JSON strings are valid YAML scalars: any category name stays one key
    lines = [
        f"# Starter brand spec for {name}, written by `lightbox init` from {source}",
        f"# ({len(products)} products, {len(categories)} categories). It is valid for that catalog as it is;",
        "# lines marked DECIDE are the brand's call. Reference: README.md \"Brand specs\", docs/formats.md.",
        f"name: {name}",
        "version: 1  # raise it when you change the look: every image is rendered again",
        f"description: {q(f'{name} - written by lightbox init')}",
        "engine: studio  # CPU studio renders; 'diffusers' with a diffusion section for AI scenes",
        "",
        "# DECIDE: the backdrop of channels that do not lock one (Amazon and Walmart main images are always pure white)",
        "background: \"#FFFFFF\"",
        "shadow: {enabled: true, opacity: 0.25}",
        "framing: {placement: center}",
        "",
        "templates:",
    ]
    for tpl, attrs in templates.items():
        cats = ", ".join(c for c, t in categories.items() if t == tpl)
        lines += [f"  {tpl}:  # {cats}"[:160],
                  f"    alt_text: {q(_alt_text(attrs))}",
                  f"    prompt: {q(_prompt(attrs))}  # used when engine is diffusers"]
    lines += [f"  {FALLBACK}:  # categories not listed below (fallback_template)",
              "    alt_text: \"{title}\"", "",
              "categories:  # catalog category -> template (DECIDE: split or merge looks per category)"]
    lines += [f"  {q(c)}: {t}" for c, t in categories.items()]
    lines += ["# categories that appear later render with this template; delete the line to quarantine them instead",
              f"fallback_template: {FALLBACK}", "",
              "# DECIDE: where the images are sold; presets: amazon_main, walmart_main, shopify_square, google_merchant,",
              "# ebay_listing, etsy_listing, web_transparent (lightbox/presets/channels.yaml)",
              f"channels: [{', '.join(channels)}]", ""]
    if value_sets:
        lines.append("# values found in the catalog: a value outside its set quarantines the row (DECIDE: extend or delete a set)")
        lines.append("value_sets:")
        lines += [f"  {a}: [{', '.join(q(v) for v in vs)}]" for a, vs in value_sets.items()]
        lines.append("")
    lines += ["quality:",
              "  max_invalid_share: 0.2   # refuse the catalog when more than 20% of rows are invalid",
              "  max_failed_share: 0.1    # quality alarm when more than 10% of rendered images fail the gate", ""]
    return Starter(name=name, text="\n".join(lines), categories=categories, templates=templates, value_sets=value_sets,
                   products=len(products))
