"""Signing off: ``int-rules approve`` and the lint checks that hold the approval records.

A *target* is one thing a Clinical Safety Officer approves: a ruleset (by id), the caseload
``pathway`` or the ``dashboard``. :func:`targets` lists a rulebook's targets with their file,
declared status, version and content hash; :func:`approve` appends a record to
``approvals.yaml`` and sets ``status: approved`` in the target's file; :func:`approval_findings`
is what lint reports about the records (see :mod:`.approvals` for what the hash covers and how
the status results report is decided).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import IntRulesError, Location, RulesetError
from ..language.yamlsrc import load_yaml, locate, shown_path
from .approvals import (
    APPROVED,
    DASHBOARD,
    PATHWAY,
    RETIRED,
    ApprovalRecord,
    approval_state,
    approvals_path,
    dashboard_hash,
    effective_status,
)
from .findings import Finding, Severity

if TYPE_CHECKING:
    from ..population.dashboard import DashboardFile
    from ..rulebook import Rulebook

__all__ = ["ApprovalError", "Target", "approval_findings", "approve", "load_dashboard_model",
           "targets"]

#: The lint checks this module adds (lint's CHECKS table includes them).
CHECKS: Mapping[str, tuple[Severity, str]] = {
    "approval-missing": ("error", "a ruleset, the pathway or the dashboard says approved with no "
                                  "approval record for its version"),
    "approval-changed": ("error", "approved content differs from the hash it was approved with"),
    "version-not-bumped": ("error", "content changed since a version was approved, but the "
                                    "version did not change"),
    "approval-unknown-target": ("error", "an approval record names nothing in the rulebook"),
    "approval-unknown-rule": ("error", "an approval note names a rule the target does not have"),
    "approval-not-applied": ("warning", "a record approves the current content but the file "
                                        "still says draft"),
}


class ApprovalError(IntRulesError):
    """An approval that cannot be recorded (unknown target, content already approved as
    another version, ...)."""


@dataclass(frozen=True)
class Target:
    """One thing that is approved: its id, file, declared status, version, hash and rule ids."""

    id: str
    kind: str  # ruleset | pathway | dashboard
    path: Path
    shown: str
    declared: str
    version: str
    sha256: str
    rules: frozenset[str]
    name: str = ""  # the id declared in the file (the pathway's and dashboard's own ids)


def load_dashboard_model(book: Rulebook) -> tuple[DashboardFile, Path] | None:
    """The dashboard declaration beside ``book`` (shape only, not compiled), or None."""
    from ..population.dashboard import DashboardFile, default_dashboard_path

    path = default_dashboard_path(book)
    if not path.is_file():
        return None
    raw = load_yaml(path, shown_path(path, book.directory))
    try:
        return DashboardFile.model_validate(raw), path
    except Exception as exc:  # pydantic's ValidationError: reported by population's loader
        raise RulesetError(Location(shown_path(path, book.directory)),
                           f"the dashboard does not load: {exc}") from None


def targets(book: Rulebook, with_dashboard: bool = True) -> dict[str, Target]:
    """Every approvable part of ``book`` by id: rulesets, ``pathway``, ``dashboard``."""
    approvals = approval_state(book)
    out: dict[str, Target] = {}
    for rs, name in zip(book.rulesets, book.manifest.rulesets, strict=False):
        path = book.directory / name
        out[rs.id] = Target(rs.id, "ruleset", path, shown_path(path, book.directory),
                            rs.definition.status, rs.definition.version,
                            approvals.hashes[rs.id],
                            frozenset(r.id for r in rs.definition.rules), rs.id)
    ppath = book.directory / book.manifest.pathway
    out[PATHWAY] = Target(PATHWAY, "pathway", ppath, shown_path(ppath, book.directory),
                          book.pathway.status, book.pathway.version, approvals.hashes[PATHWAY],
                          frozenset(t.id for t in book.pathway.definition.transitions),
                          book.pathway.id)
    if with_dashboard:
        found = load_dashboard_model(book)
        if found is not None:
            model, dpath = found
            out[DASHBOARD] = Target(DASHBOARD, "dashboard", dpath,
                                    shown_path(dpath, book.directory),
                                    model.status, model.version, dashboard_hash(book, model),
                                    frozenset(m.id for m in model.measures), model.dashboard)
    return out


def resolve_target(book: Rulebook, name: str) -> Target:
    """A target named by id (``identification``, ``pathway``, ``dashboard``) or by its file."""
    found = targets(book)
    if name in found:
        return found[name]
    for t in found.values():
        if Path(name).name == t.path.name and (not Path(name).exists()
                                               or Path(name).resolve() == t.path.resolve()):
            return t
    raise ApprovalError(f"{name!r} is not a ruleset, the pathway or the dashboard of rulebook "
                        f"{book.id} (choose one of: {', '.join(found)})")


# -- approve ----------------------------------------------------------------------------------

_STATUS_LINE = re.compile(r"^status:[ \t]*(draft|approved|retired)[ \t]*(#.*)?$", re.MULTILINE)


def _set_status(path: Path, status: str) -> bool:
    """Set the top-level ``status:`` line of a YAML file, keeping its comments. True if changed."""
    text = path.read_text(encoding="utf-8")
    found = list(_STATUS_LINE.finditer(text))
    if len(found) != 1:
        raise ApprovalError(f"{path}: expected one top-level 'status:' line, found {len(found)}")
    m = found[0]
    if m.group(1) == status:
        return False
    comment = f"  {m.group(2)}" if m.group(2) else ""
    _write_atomic(path, text[:m.start()] + f"status: {status}{comment}" + text[m.end():])
    return True


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_HEADER = """\
# Clinical safety sign-off (DCB0129): who approved which version of each ruleset, the caseload
# pathway and the dashboard, and the content hash of exactly what they approved.
# Written by `int-rules approve TARGET --by NAME --role ROLE --date YYYY-MM-DD`; read by lint,
# the safety case and every result (a status says "approved" only while the hash matches).
# What the hash covers: docs/review.md#approval-records.
"""


def render_approvals(rulebook_id: str, records: tuple[ApprovalRecord, ...]) -> str:
    """The text of ``approvals.yaml`` for ``records`` (oldest first)."""
    items: list[dict[str, Any]] = []
    for r in records:
        item: dict[str, Any] = {"target": r.target, "version": r.version, "sha256": r.sha256,
                                "by": r.by, "role": r.role, "date": r.date}
        if r.notes:
            item["notes"] = dict(r.notes)
        items.append(item)
    data = {"approvals_for": rulebook_id, "approvals": items}
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=False)
    return _HEADER + body


def approve(book: Rulebook, target: str, by: str, role: str, date: str,
            notes: Mapping[str, str] | None = None) -> tuple[ApprovalRecord, Path, bool]:
    """Record that ``by`` (``role``) approved ``target`` of ``book`` on ``date`` (YYYY-MM-DD).

    Appends the record to ``approvals.yaml`` beside the manifest and sets ``status: approved``
    in the target's file. Returns the record, the approvals file and whether the status line
    changed. Refuses (ApprovalError) a retired target, a note for a rule the target does not
    have, and content that differs from what its version was approved as (bump the version).
    """
    t = resolve_target(book, target)
    if t.declared == RETIRED:
        raise ApprovalError(f"{t.shown}: {t.id} is retired; a retired ruleset is not approved")
    notes = dict(notes or {})
    unknown = sorted(set(notes) - t.rules)
    if unknown:
        raise ApprovalError(f"note for {', '.join(unknown)}: not a rule of {t.id} "
                            f"(its rules: {', '.join(sorted(t.rules))})")
    record = ApprovalRecord(target=t.id, version=t.version, sha256=t.sha256, by=by, role=role,
                            date=date, notes=notes)
    approvals = approval_state(book)
    earlier = approvals.for_target(t.id)
    for r in earlier:
        if r.version == t.version and r.sha256 != t.sha256:
            raise ApprovalError(
                f"{t.shown}: version {t.version} of {t.id} was approved on {r.date} by {r.by} "
                "with different content; bump 'version' in the file, then approve again")
        if (r.version, r.sha256, r.by, r.role) == (t.version, t.sha256, by, role):
            raise ApprovalError(f"{t.id} {t.version} is already approved by {by} ({role}) on "
                                f"{r.date}; nothing to record")
    path = approvals_path(book.directory)
    _write_atomic(path, render_approvals(book.id, (*approvals.records, record)))
    changed = _set_status(t.path, APPROVED)
    return record, path, changed


# -- lint -------------------------------------------------------------------------------------


def _status_location(t: Target) -> Location:
    try:
        raw = load_yaml(t.path, t.shown)
    except RulesetError:
        return Location(t.shown)
    return locate(raw, ("status",), t.shown)


def approval_findings(book: Rulebook) -> list[Finding]:
    """What lint reports about the approval records of ``book`` (see :data:`CHECKS`)."""
    approvals = approval_state(book)
    found = targets(book)
    out: list[Finding] = []
    for i, r in enumerate(approvals.records):
        loc = approvals.locations[i] if i < len(approvals.locations) else None
        t = found.get(r.target)
        if t is None:
            out.append(Finding.at(loc, "approval-unknown-target", "error",
                                  f"approval of {r.target!r}: the rulebook has no such ruleset "
                                  f"(targets: {', '.join(found)})", f"approval {r.target}"))
            continue
        for rule in sorted(set(r.notes) - t.rules):
            out.append(Finding.at(loc, "approval-unknown-rule", "error",
                                  f"a note names {rule}, which is not in {t.id}",
                                  f"approval {r.target} {r.version}"))
    for t in found.values():
        records = approvals.for_target(t.id)
        same_version = [r for r in records if r.version == t.version]
        matching = [r for r in same_version if r.sha256 == t.sha256]
        key = f"{t.kind} {t.id}" if t.kind == "ruleset" else t.id
        status = effective_status(t.declared, t.version, t.sha256, records)
        if same_version and not matching:
            r = same_version[-1]
            check = "approval-changed" if t.declared == APPROVED else "version-not-bumped"
            what = ("approved content differs from the hash it was approved with"
                    if t.declared == APPROVED else "content changed since this version was "
                                                   "approved")
            out.append(Finding.at(
                _status_location(t), check, "error",
                f"{what} ({t.version} approved {r.date} by {r.by}: sha256 {r.sha256[:12]}…, now "
                f"{t.sha256[:12]}…); bump 'version', review the change (`int-rules diff`) and "
                "approve again", key))
        elif t.declared == APPROVED and not matching:
            older = ", ".join(sorted({r.version for r in records})) or "none"
            out.append(Finding.at(
                _status_location(t), "approval-missing", "error",
                f"says approved, but no approval record is for version {t.version} (approved "
                f"versions: {older}); run `int-rules approve {t.id} --by NAME --role ROLE "
                "--date YYYY-MM-DD`", key))
        elif t.declared != APPROVED and matching and status != APPROVED and t.declared != RETIRED:
            out.append(Finding.at(
                _status_location(t), "approval-not-applied", "warning",
                f"version {t.version} is approved ({matching[-1].date} by {matching[-1].by}) "
                f"but the file says {t.declared}; set 'status: approved'", key))
    return out
