"""Helpers for testing Lightbox and projects built on it (small, offline, deterministic)."""
