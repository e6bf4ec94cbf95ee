"""Markdown-safe text, for every Markdown file edgebench writes (summary.md, comparison.md, the
gate's step summary): names come from models, recipes and files, so they are data, never markup."""
from __future__ import annotations

import html
import re

# Every character that can start or end Markdown syntax, inside a line or at its start.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def md(text) -> str:
    """Escape a value for use as text anywhere in GitHub-flavoured Markdown, table cells included:
    HTML is neutralised, Markdown punctuation backslash-escaped, newlines folded."""
    text = html.escape("" if text is None else str(text), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")
