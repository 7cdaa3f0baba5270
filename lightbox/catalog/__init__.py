"""Catalog formats and validation."""
