"""The names people read for the bundled guidance files.

A citation names its guidance by file (``000_ae3274b61be1e38b.txt``), which is exact but means
nothing to a reader. The rulebook manifest (``rulesets/rulebook.yaml``, ``guidance_names``) maps
each file to the name the guidance goes by, e.g. "Version 1 (2024)". Outputs meant for people
(explanations, the reference, the population report, the safety case) show that name through
the two functions below; machine-readable outputs (``Assessment.to_dict()``, CSV) keep the file
name, so a citation can still be checked against the file.
"""

from __future__ import annotations

from collections.abc import Mapping


def guidance_name(names: Mapping[str, str], source: str) -> str:
    """The name a reader sees for one guidance file (the file name if it has none)."""
    return names.get(source, source)


def with_guidance_names(names: Mapping[str, str], text: str) -> str:
    """``text`` with every guidance file name in it replaced by the file's name for people.

    A file name written as code (```file```) becomes the plain name, so a Markdown table reads
    "Version 2 (December 2025)", not a monospaced file name.
    """
    for source, name in names.items():
        text = text.replace(f"`{source}`", name).replace(source, name)
    return text
