"""Lightbox core: catalog formats, brand specs, imaging, engines, quality and storage.

This package never imports prefect; the Prefect layer lives in ``tasks/`` and ``flows/``.
"""

__version__ = "0.1.0"
