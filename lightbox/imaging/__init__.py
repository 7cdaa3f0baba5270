"""Imaging primitives: decode, cut out, compose, encode."""
