"""Catalog text made safe for the people who read it: in a spreadsheet, on a terminal, in a rendered report.

Catalogs come from outside; a SKU, title or reason may carry what attacks its reader:

- :func:`csv_cell`: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is a formula to
  Excel/LibreOffice/Sheets (OWASP "CSV injection"): it gets a leading ``'`` so it stays text;
- :func:`terminal`: control characters (ESC sequences that recolour, move the cursor, set the window
  title or write hyperlinks; C1 controls; BEL, backspace, carriage return) are shown escaped (``\\x1b``);
- :func:`markdown`: HTML and Markdown in catalog text are escaped so a report artifact shows them as text.
"""

from __future__ import annotations

import html
import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")


def csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def terminal(text: object) -> str:
    """``text`` with control characters escaped; newlines become ``\\n`` too (one line stays one line)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text)).replace("\n", "\\n")


def markdown(text: object) -> str:
    """``text`` for a Markdown table cell or line: HTML escaped, Markdown punctuation escaped, one line."""
    escaped = html.escape(str(text), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", escaped).replace("\r", " ").replace("\n", " ")
