"""Read brand specs and channel presets from YAML; every error names the file, the field and the reason."""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources
from typing import Any

import fsspec
import yaml
from pydantic import ValidationError

from lightbox.config import validation_message as _format_errors
from lightbox.errors import SpecError
from lightbox.specs.models import BrandSpec, ChannelPreset, RulePack

log = logging.getLogger(__name__)


def _read_yaml(uri: str) -> Any:
    try:
        with fsspec.open(uri, "r", encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise SpecError(f"{uri}: file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{uri}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    except OSError as e:
        raise SpecError(f"{uri}: cannot read ({e.strerror or e})") from None


HOUSE_PACK = "lightbox"


@lru_cache(maxsize=1)
def load_rule_packs() -> dict[str, RulePack]:
    """The shipped marketplace rule packs (lightbox/presets/rules/*.yaml)."""
    packs: dict[str, RulePack] = {}
    for entry in sorted(resources.files("lightbox.presets.rules").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        try:
            pack = RulePack(**yaml.safe_load(entry.read_text(encoding="utf-8")))
        except ValidationError as e:
            raise SpecError(_format_errors(f"lightbox/presets/rules/{entry.name}", e, RulePack)) from None
        packs[pack.name] = pack
    return packs


@lru_cache(maxsize=1)
def load_channel_presets() -> dict[str, ChannelPreset]:
    """The shipped channel presets (lightbox/presets/channels.yaml), with their rule packs resolved:
    each preset's ``rules`` become house rules + its packs' rules + its own rules."""
    text = resources.files("lightbox.presets").joinpath("channels.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    packs = load_rule_packs()
    out: dict[str, ChannelPreset] = {}
    for name, body in data["channels"].items():
        where = f"lightbox/presets/channels.yaml: channels.{name}"
        try:
            preset = ChannelPreset(name=name, **body)
        except ValidationError as e:
            raise SpecError(_format_errors(where, e, ChannelPreset)) from None
        rules = list(packs[HOUSE_PACK].rules)
        for pack in preset.rule_packs:
            if pack not in packs:
                raise SpecError(f"{where}: rule_packs: unknown pack {pack!r} (known: {', '.join(sorted(packs))})")
            rules += packs[pack].rules
        out[name] = preset.model_copy(update={"rules": rules + list(preset.rules)})
    return out


def load_brand_spec(uri: str) -> BrandSpec:
    """Parse and check a brand spec; unknown channels and malformed templates fail here, not mid-run."""
    data = _read_yaml(uri)
    if not isinstance(data, dict):
        raise SpecError(f"{uri}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        spec = BrandSpec(**data)
    except ValidationError as e:
        raise SpecError(_format_errors(uri, e, BrandSpec)) from None
    presets = load_channel_presets()
    for i, name in enumerate(spec.channels):
        if name not in presets:
            raise SpecError(f"{uri}: channels.{i}: unknown channel {name!r} (known: {', '.join(sorted(presets))})")
    log.debug("loaded brand spec %s v%s from %s", spec.name, spec.version, uri)
    return spec


def spec_channels(spec: BrandSpec) -> list[ChannelPreset]:
    presets = load_channel_presets()
    return [presets[name] for name in spec.channels]
