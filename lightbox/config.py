"""Small YAML config files (fetch policy, webhooks) read into pydantic models with one-line errors (the wording
of every validation error a YAML file gets, brand specs included: :func:`validation_message`), and
where Lightbox keeps its own files (``$LIGHTBOX_HOME``, default ``~/.lightbox``: API keys)."""

from __future__ import annotations

import difflib
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

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
        raise SpecError(validation_message(uri, e, model)) from None


def lightbox_home() -> Path:
    """``$LIGHTBOX_HOME``, else ``~/.lightbox`` (not the working directory: keys must not land in a repo)."""
    return Path(os.environ.get("LIGHTBOX_HOME") or Path.home() / ".lightbox")


def api_keys_file() -> str:
    """``$LIGHTBOX_API_KEYS_FILE``, else ``$LIGHTBOX_HOME/api-keys.json``."""
    return os.environ.get("LIGHTBOX_API_KEYS_FILE") or str(lightbox_home() / "api-keys.json")


def _models_in(annotation: Any) -> set[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {annotation}
    return set().union(*(_models_in(a) for a in typing.get_args(annotation)))


def _models_at(model: type[BaseModel], path: tuple[Any, ...]) -> set[type[BaseModel]]:
    """The models a spec's value at ``path`` (an error's location) can be."""
    current = {model}
    for part in path:
        nxt = set().union(*(_models_in(m.model_fields[part].annotation) for m in current
                            if isinstance(part, str) and part in m.model_fields))
        current = nxt or current  # a dict key, a list index or a union's tag: the same models go on
    return current


def _kinds(model: type[BaseModel] | None, path: tuple[Any, ...], tag: str) -> str:
    """The values a tagged union at ``path`` accepts for ``tag`` ("solid, gradient")."""
    models = _models_at(model, path) if model else set()
    return ", ".join(sorted(str(v) for m in models if tag in m.model_fields for v in typing.get_args(m.model_fields[tag].annotation)))


def validation_message(source: str, err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """``source: field: reason; ...`` for every error of ``err``, in words: an unknown key with the nearest known one
    ("did you mean 'background'?"), a tagged union's kinds, the value given where the reason does not already say it."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("function-after", "function-before"))
        msg = e["msg"].removeprefix("Value error, ")
        shown = e.get("input")
        where = f"{loc}: " if loc else ""  # a check of the whole spec names its own fields
        if e["type"] in ("missing",):
            parts.append(f"{loc}: field required")
        elif e["type"] == "invalid_key":  # YAML read "opacity: 0,30" in a {...} mapping as "opacity: 0" and a key 30
            parent = ".".join(str(p) for p in e["loc"][:-1]) or "top level"
            parts.append(f"{parent}: unexpected key {shown!r} - a decimal comma? In YAML '0,30' inside {{...}} is two "
                         "entries; write 0.30")
        elif e["type"] in ("union_tag_not_found", "union_tag_invalid"):
            tag = e["ctx"]["discriminator"].strip("'")
            given = f"{tag} {e['ctx']['tag']!r} is unknown" if e["type"] == "union_tag_invalid" else f"{tag} missing"
            parts.append(f"{where}{given} (one of {_kinds(model, e['loc'], tag)})")
        elif e["type"] == "extra_forbidden":
            key = str(e["loc"][-1])
            known = sorted({name for m in _models_at(model, e["loc"][:-1]) for name in m.model_fields}) if model else []
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" - did you mean {close[0]!r}?" if close else (f" (known: {', '.join(known)})" if known else "")
            parts.append(f"{where}unknown key{hint}")
        elif isinstance(shown, (dict, list)) or e["type"].startswith("extra") or repr(shown) in msg:
            parts.append(f"{where}{msg}")
        else:
            parts.append(f"{where}{msg} (got {shown!r})")
    return f"{source}: " + "; ".join(parts)
