"""Small YAML config files (fetch policy, webhooks) read into pydantic models with one-line errors, and
where Lightbox keeps its own files (``$LIGHTBOX_HOME``, default ``~/.lightbox``: API keys)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from lightbox.errors import SpecError

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(uri: str | None, model: type[M]) -> M:
    """``model`` from a YAML mapping at ``uri`` (local path or any fsspec URI); its defaults when ``uri``
    is empty. Raises SpecError naming the file, the field and the value."""
    if not uri:
        return model()
    from lightbox.storage import read_bytes

    try:
        raw = yaml.safe_load(read_bytes(uri)) or {}
    except FileNotFoundError:
        raise SpecError(f"{uri}: file not found") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{uri}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{uri}: expected a mapping of {model.__name__} fields, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or model.__name__
        raise SpecError(f"{uri}: {where}: {err['msg']} (got {err.get('input')!r})") from None


def lightbox_home() -> Path:
    """``$LIGHTBOX_HOME``, else ``~/.lightbox`` (not the working directory: keys must not land in a repo)."""
    return Path(os.environ.get("LIGHTBOX_HOME") or Path.home() / ".lightbox")


def api_keys_file() -> str:
    """``$LIGHTBOX_API_KEYS_FILE``, else ``$LIGHTBOX_HOME/api-keys.json``."""
    return os.environ.get("LIGHTBOX_API_KEYS_FILE") or str(lightbox_home() / "api-keys.json")
