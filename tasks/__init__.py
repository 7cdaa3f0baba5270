"""Thin Prefect tasks over the plain-Python core in ``lightbox``: names, retries, logging, artifacts."""
