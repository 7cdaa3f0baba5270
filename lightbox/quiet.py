"""Third-party libraries speak through Python logging, never straight to the terminal.

diffusers and transformers install their own stderr handlers (a run of the AI example printed ten lines:
"requires torchvision", CLIP's 77-token truncation...), and ``warnings.warn`` prints too. After
:func:`route_library_logs` their records propagate like Lightbox's own: to the Prefect API with the run's
logs (``PREFECT_LOGGING_EXTRA_LOGGERS``, set by the CLI), to the terminal only with ``-v``.
"""

from __future__ import annotations

import logging
import sys

LIBRARIES = ("diffusers", "transformers")


def route_library_logs() -> None:
    """Route the loaded libraries' loggers and Python warnings into logging (idempotent, cheap)."""
    logging.captureWarnings(True)
    for name in LIBRARIES:
        module = sys.modules.get(name)
        if module is None:
            continue
        lib = module.utils.logging
        lib.disable_default_handler()
        lib.enable_propagation()
