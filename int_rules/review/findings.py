"""A review finding: what ``int-rules lint`` (and the hazard-log checks) report.

Every finding has a stable ``check`` name (the list is in ``docs/review.md``), a severity, the
place it is about (``file:line:column`` and a key such as ``rule REV-020``) and, for the decision
checks, an example input that shows it. Findings are plain immutable data; ``to_dict()`` gives
stable JSON and ``text()`` one line (plus the example) for a terminal or a CI log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import Location

__all__ = ["SEVERITIES", "Finding", "Severity", "count_by_severity", "sort_findings"]

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One problem (or note) found in a rulebook, located, with an example where there is one."""

    check: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    key: str | None = None
    example: Mapping[str, str] | None = None
    rules: tuple[str, ...] = ()
    detail: tuple[str, ...] = field(default=())

    @classmethod
    def at(cls, location: Location | None, check: str, severity: Severity, message: str,
           key: str | None = None, **more: Any) -> Finding:
        """A finding at a parsed YAML location (or nowhere in particular)."""
        if location is None:
            return cls(check, severity, message, key=key, **more)
        return cls(check, severity, message, location.file, location.line, location.column,
                   key, **more)

    @property
    def where(self) -> str:
        """``file:line:column`` (as much of it as is known), or empty."""
        if self.file is None:
            return ""
        return str(Location(self.file, self.line, self.column))

    def text(self) -> str:
        """One line for a terminal, then the example and any detail, indented."""
        prefix = f"{self.where}: " if self.where else ""
        key = f"{self.key}: " if self.key else ""
        lines = [f"{prefix}{self.severity} [{self.check}] {key}{self.message}"]
        if self.example:
            lines.append("    example input: " + "; ".join(
                f"{name} = {value}" for name, value in self.example.items()))
        lines.extend(f"    {d}" for d in self.detail)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "severity": self.severity,
                               "message": self.message}
        if self.file is not None:
            out["file"] = self.file
            out["line"] = self.line
            out["column"] = self.column
        if self.key is not None:
            out["key"] = self.key
        if self.rules:
            out["rules"] = list(self.rules)
        if self.example is not None:
            out["example"] = dict(self.example)
        if self.detail:
            out["detail"] = list(self.detail)
        return out


def _order(f: Finding) -> tuple[Any, ...]:
    return (SEVERITIES.index(f.severity), f.file or "~", f.line or 0, f.column or 0, f.check,
            f.key or "", f.message)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Errors first, then warnings, then notes; each by file and position (deterministic)."""
    return sorted(findings, key=_order)


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {s: 0 for s in SEVERITIES}
    for f in findings:
        counts[f.severity] += 1
    return counts
