"""Brand specs and channel presets: YAML files parsed into typed, frozen models."""

from lightbox.specs.loader import load_brand_spec, load_channel_presets, load_rule_packs, spec_channels
from lightbox.specs.models import BrandSpec, ChannelPreset, Look, resolve_look

__all__ = ["BrandSpec", "ChannelPreset", "Look", "load_brand_spec", "load_channel_presets", "load_rule_packs", "resolve_look", "spec_channels"]
