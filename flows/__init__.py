"""Prefect flows. Each reads like its DAG; the work is in ``tasks`` and ``lightbox``."""
