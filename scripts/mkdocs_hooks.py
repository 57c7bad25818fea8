"""MkDocs hook: links from a docs page to repository files outside ``docs/`` (``../rulesets/``,
``../examples/``, ``../benchmarks/``) work when the Markdown is read in the repository, but the
site does not carry those files. On the site such a link becomes its text, so the strict build
still fails on every other broken link."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s#]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs = Path(config["docs_dir"]).resolve()
    here = (docs / page.file.src_uri).parent

    def outside(match: re.Match[str]) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("mailto:", "/")):
            return match.group(0)
        resolved = (here / target).resolve()
        if resolved.is_relative_to(docs):
            return match.group(0)
        return match.group(1)

    return _LINK.sub(outside, markdown)


# Docstrings use Sphinx roles (:class:`~int_rules.Rulebook`), which Markdown renders as
# ":class:<code>~int_rules.Rulebook</code>": show the name alone, as Sphinx would.
_ROLE = re.compile(r":(?:class|mod|func|meth|attr|data|exc|obj):<code>(~?)([^<]+)</code>")


def _role(match: re.Match[str]) -> str:
    name = match.group(2)
    if match.group(1):
        name = name.rsplit(".", 1)[-1]
    return f"<code>{name}</code>"


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return _ROLE.sub(_role, html)
