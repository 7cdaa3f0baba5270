"""The brand-spec reference, generated from the spec models' fields (types, defaults, bounds, descriptions).

    python -m lightbox.specs.reference > docs/brand-spec-reference.md     # write it
    python -m lightbox.specs.reference --check docs/brand-spec-reference.md   # exit 1 when it is stale

A test runs the check, so the page cannot drift from the code that reads the YAML.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from typing import Any, Literal, Union

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from lightbox.specs import models as m

# the order of the sections: the top level first, then each part as it appears in it
ROOT = m.BrandSpec
TITLE = "# Brand spec reference"
INTRO = (
    "Every field a brand spec (`brand_specs/*.yaml`) may set, generated from `lightbox/specs/models.py` by\n"
    "`python -m lightbox.specs.reference` (a test fails when this page is stale). A guide with examples:\n"
    "[brand-specs.md](brand-specs.md). Unknown keys are refused with a did-you-mean; every error names the file,\n"
    "the field and the value."
)


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """``root`` and every model reachable from its fields, depth first, each once."""
    seen: list[type[BaseModel]] = []

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for f in model.model_fields.values():
            for sub in _nested(f.annotation):
                visit(sub)

    visit(root)
    return seen


def _nested(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _nested(arg)
    return out


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin in (Union, types.UnionType):
        return " \\| ".join(_type(a) for a in args)
    if origin in (list, tuple):
        inner = ", ".join(_type(a) for a in args if a is not Ellipsis)
        return f"list of {inner}" if origin is list else f"[{inner}]"
    if origin is dict:
        return f"map {_type(args[0])} → {_type(args[1])}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if annotation is m.Color or annotation == m.Color:
        return "colour"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel) and not value.model_dump(exclude_defaults=True):
        return "its defaults"
    return f"`{json.dumps(_plain(value))}`"


def _plain(value: Any) -> Any:
    """A default as YAML would read it (models as the fields they set, tuples as lists)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _bounds(field: Any) -> str:
    said = []
    for c in field.metadata:
        for kind, word in ((Ge, "≥"), (Gt, ">"), (Le, "≤"), (Lt, "<"), (MinLen, "at least"), (MaxLen, "at most")):
            if isinstance(c, kind):
                value = next(getattr(c, a) for a in ("ge", "gt", "le", "lt", "min_length", "max_length") if hasattr(c, a))
                said.append(f"{word} {value}" + (" items" if kind in (MinLen, MaxLen) else ""))
    return ", ".join(said)


def _doc(model: type[BaseModel]) -> str:
    text = (model.__doc__ or "").strip()
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def reference_markdown() -> str:
    lines = [TITLE, "", INTRO, ""]
    for model in _models(ROOT):
        lines += [f"## {model.__name__}", ""]
        if doc := _doc(model):
            lines += [doc, ""]
        lines += ["| field | type | default | bounds | what it does |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{name}` | {_type(field.annotation)} | {_default(field)} | {_bounds(field)} | {description} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = reference_markdown()
    if len(argv) == 2 and argv[0] == "--check":
        with open(argv[1], encoding="utf-8") as f:
            if f.read() != text:
                sys.stderr.write(f"{argv[1]} is stale: python -m lightbox.specs.reference > {argv[1]}\n")
                return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
