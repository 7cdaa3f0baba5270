"""Marketplace rule packs (YAML data)."""
