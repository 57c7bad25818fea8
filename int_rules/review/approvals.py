"""Approval records (DCB0129 sign-off): who approved which version of what, against which hash.

The records live in ``approvals.yaml`` beside the rulebook manifest (``rulesets/approvals.yaml``
for the bundled rulebook). One record per sign-off::

    approvals_for: hwe-int-proactive-care
    approvals:
      - target: identification        # a ruleset id, ``pathway`` or ``dashboard``
        version: 0.2.0
        sha256: 3f5c...               # content_hash() of exactly what was approved
        by: Dr A N Other
        role: Clinical Safety Officer
        date: 2026-12-01
        notes:                        # optional, one per rule
          IDN-010: Checked against the Version 2 frailty wording.

``int-rules approve TARGET --by NAME --role ROLE --date YYYY-MM-DD`` appends a record and sets
``status: approved`` in the target's file. The library never reads the clock: the date is an
argument.

**What the content hash covers** (:func:`content_hashes`): SHA-256 over canonical JSON (keys
sorted, no whitespace) of everything that decides what a target does or what a reviewer reads
about it, and nothing else:

* the target's own declaration as loaded (every key of the file, defaults filled in, named
  conditions as written), **except** ``status``, which is what approval changes;
* every fact its rules read, directly or through other facts (derived facts, ``since`` /
  ``from`` / ``until`` anchors), with the facts-file parameters those facts read;
* every codelist those facts (or the pathway's steps) use: title, source, verification, and
  every code with its term and verification;
* for a ruleset or dashboard that reads the caseload pathway (``kind: pathway`` facts), the
  pathway's own content hash; for the dashboard, the hash of every ruleset whose outputs it
  counts or lists as findings.

Comments and layout in the YAML are not content (rewording a comment needs no re-approval);
any change to a rule, a citation, a parameter's value, provenance or ``why``, a fact's
definition or a code's membership or term does change the hash. An INT's parameter overrides
are not part of it: they are a local (DCB0160) decision, reported beside the status in every
result (``overrides`` in ``Assessment.provenance()``).

**The status a result reports** (:func:`effective_status`, the one place it is decided):
``approved`` only when the file says ``approved`` and a record for its current version carries
its current hash; ``changed since approval`` when a record for the target exists but none
matches what is there now; ``retired`` for a retired ruleset; otherwise ``draft``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import Location, RulesetError
from ..language.yamlsrc import load_yaml, locate, shown_path, validate_located

if TYPE_CHECKING:
    from ..population.dashboard import DashboardFile
    from ..rulebook import Rulebook

__all__ = [
    "APPROVALS_FILE",
    "APPROVED",
    "CHANGED",
    "DRAFT",
    "RETIRED",
    "ApprovalRecord",
    "Approvals",
    "ApprovalsFile",
    "approval_state",
    "approvals_path",
    "content_hash",
    "content_hashes",
    "dashboard_hash",
    "effective_status",
    "load_approvals",
    "overall_status",
    "status_of",
]

APPROVALS_FILE = "approvals.yaml"
APPROVED = "approved"
DRAFT = "draft"
CHANGED = "changed since approval"
RETIRED = "retired"
#: The targets that are not rulesets.
PATHWAY = "pathway"
DASHBOARD = "dashboard"

_STRICT = ConfigDict(extra="forbid", frozen=True)


class ApprovalRecord(BaseModel):
    """One sign-off: who approved which version of a target, when, against which hash."""

    model_config = _STRICT
    target: str = Field(pattern=r"^[a-z][a-z0-9_]*$",
                        description="a ruleset id, 'pathway' or 'dashboard'")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$",
                        description="content hash of what was approved (see docs/review.md)")
    by: str = Field(min_length=1, description="the approver's name")
    role: str = Field(min_length=1, description="e.g. Clinical Safety Officer")
    date: str = Field(description="YYYY-MM-DD")
    notes: dict[str, str] = Field(default_factory=dict,
                                  description="optional notes, keyed by rule id")

    @field_validator("date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date (expected YYYY-MM-DD)") from None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(f"{value!r} is not a date (expected YYYY-MM-DD)")
        return value


class ApprovalsFile(BaseModel):
    """``approvals.yaml``: every sign-off of a rulebook's parts, oldest first."""

    model_config = _STRICT
    approvals_for: str = Field(min_length=1, description="the rulebook id")
    approvals: list[ApprovalRecord] = Field(default_factory=list)


@dataclass(frozen=True)
class Approvals:
    """A rulebook's approval records, its targets' content hashes and the status of each.

    ``statuses`` maps every ruleset id and ``pathway`` to the status results report.
    """

    file: str | None
    records: tuple[ApprovalRecord, ...] = ()
    locations: tuple[Location, ...] = ()
    hashes: Mapping[str, str] = field(default_factory=dict)
    declared: Mapping[str, str] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)

    def for_target(self, target: str) -> tuple[ApprovalRecord, ...]:
        return tuple(r for r in self.records if r.target == target)

    def matching(self, target: str) -> ApprovalRecord | None:
        """The latest record that approved exactly what ``target`` is now, if any."""
        found = [r for r in self.for_target(target)
                 if r.version == self.versions.get(target) and r.sha256 == self.hashes.get(target)]
        return found[-1] if found else None


# -- the status -------------------------------------------------------------------------------


def effective_status(declared: str, version: str, sha256: str,
                     records: Iterable[ApprovalRecord]) -> str:
    """The status a result may report for a target: the one rule, used everywhere.

    ``approved`` only when ``declared`` is ``approved`` and a record for ``version`` carries
    ``sha256``; ``retired`` when declared retired; ``changed since approval`` when the target
    has records but none matches its current version and hash; otherwise ``draft``.
    """
    if declared == RETIRED:
        return RETIRED
    records = list(records)
    matches = any(r.version == version and r.sha256 == sha256 for r in records)
    if declared == APPROVED and matches:
        return APPROVED
    if records and not matches:
        return CHANGED
    return DRAFT


def overall_status(statuses: Iterable[str]) -> str:
    """One word for a set of statuses: the least approved of them (for one cell per row)."""
    found = set(statuses)
    for status in (CHANGED, DRAFT, RETIRED):
        if status in found:
            return status
    return APPROVED


def status_of(book: Rulebook, target: str) -> str:
    """The status results report for ``target`` (a ruleset id or ``pathway``) of ``book``."""
    approvals = approval_state(book)
    return approvals.statuses.get(target, DRAFT)


def approval_state(book: Rulebook) -> Approvals:
    """The book's approvals (computed at load; an empty set for a book built without them)."""
    found = getattr(book, "approvals", None)
    if isinstance(found, Approvals):
        return found
    return build_approvals(book, None)


# -- the content hash -------------------------------------------------------------------------


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def _dump(model: BaseModel, *, exclude: set[str] | None = None) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude=exclude)


def _walk(value: Any, key: str) -> list[Any]:
    """Every value held under ``key`` anywhere inside plain data (one pass, no recursion)."""
    found: list[Any] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key:
                    found.append(v)
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return found


def _names(values: Iterable[Any]) -> set[str]:
    out: set[str] = set()
    for v in values:
        if isinstance(v, str):
            out.add(v)
        elif isinstance(v, list):
            out.update(x for x in v if isinstance(x, str))
        elif isinstance(v, dict):
            out.update(_names(v.values()))
    return out


class _Index:
    """Per-book data the hashes share: each fact's dump and the facts it reads, each
    codelist's view (built once, however many rulesets use it)."""

    def __init__(self, book: Rulebook) -> None:
        self.book = book
        defs = book.facts_file.facts
        self.dumps = {n: _dump(f) for n, f in defs.items()}
        self.refs = {n: {r for r in _names(_walk(d, "fact"))
                         | _names(d.get(k) for k in ("since", "from", "until")) if r in defs}
                     for n, d in self.dumps.items()}
        self.params = {n: _names(_walk(d, "param")) for n, d in self.dumps.items()}
        self.lists = {n: _names(_walk(d, "codelist")) | _names(_walk(d, "categories"))
                      for n, d in self.dumps.items()}
        self._codelists: dict[str, Any] = {}

    def closure(self, roots: Iterable[str]) -> list[str]:
        seen: set[str] = set()
        todo = [r for r in roots if r in self.dumps]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.refs[name] - seen)
        return sorted(seen)

    def codelists(self, ids: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for cid in sorted(set(ids)):
            if cid not in self.book.codelists:
                continue
            if cid not in self._codelists:
                cl = self.book.codelists[cid]
                self._codelists[cid] = {
                    "title": cl.title, "verified": cl.verified, "description": cl.description,
                    "source": [cl.source.kind, cl.source.ref, cl.source.version, cl.source.url,
                               cl.source.note],
                    "codes": sorted([e.code, e.term, e.verified] for e in cl.entries),
                }
            out[cid] = self._codelists[cid]
        return out

    def facts_part(self, roots: Iterable[str]) -> tuple[dict[str, Any], bool]:
        """The facts (closure), their parameters and codelists; and whether any reads the
        pathway."""
        defs = self.book.facts_file.facts
        names = self.closure(roots)
        facts = {n: self.dumps[n] for n in names}
        params = set().union(*(self.params[n] for n in names))
        codelists = set().union(*(self.lists[n] for n in names))
        declared = self.book.facts_file.parameters
        part = {
            "facts": facts,
            "fact_parameters": {p: _dump(declared[p]) for p in sorted(params) if p in declared},
            "codelists": self.codelists(codelists),
        }
        return part, any(defs[n].kind == "pathway" for n in names)


def fact_closure(book: Rulebook, roots: Iterable[str]) -> list[str]:
    """``roots`` and every fact they are computed from (derived facts, date anchors), sorted."""
    return _Index(book).closure(roots)


def fact_parameters_read(book: Rulebook, facts: Iterable[str]) -> list[str]:
    """The facts-file parameters read by ``facts`` or the facts they are computed from."""
    index = _Index(book)
    params = set().union(*(index.params[n] for n in index.closure(facts)))
    return sorted(p for p in params if p in book.facts_file.parameters)


def _pathway_hash(index: _Index) -> str:
    content = _dump(index.book.pathway.definition, exclude={"status"})
    codelists = _names(_walk(content, "codelists")) | _names(_walk(content, "codelist"))
    return hashlib.sha256(_canonical({
        "kind": PATHWAY, "content": content, "codelists": index.codelists(codelists),
    })).hexdigest()


def _ruleset_hash(index: _Index, ruleset_id: str, pathway_sha: str) -> str:
    rs = index.book.ruleset(ruleset_id)
    content = _dump(rs.definition, exclude={"status"})
    part, reads_pathway = index.facts_part(_names(_walk(content, "fact")))
    return hashlib.sha256(_canonical({
        "kind": "ruleset", "content": content, **part,
        "pathway": pathway_sha if reads_pathway else None,
    })).hexdigest()


def content_hashes(book: Rulebook) -> dict[str, str]:
    """The content hash of every ruleset (by id) and of ``pathway``: see the module docs."""
    index = _Index(book)
    pathway_sha = _pathway_hash(index)
    out = {rs.id: _ruleset_hash(index, rs.id, pathway_sha) for rs in book.rulesets}
    out[PATHWAY] = pathway_sha
    return out


def content_hash(book: Rulebook, target: str) -> str:
    """The content hash of one target (a ruleset id or ``pathway``; the dashboard: see
    :func:`dashboard_hash`)."""
    hashes = approval_state(book).hashes
    if target not in hashes:
        raise KeyError(target)
    return hashes[target]


def dashboard_hash(book: Rulebook, dashboard: DashboardFile) -> str:
    """The content hash of a dashboard declaration (``DashboardFile``) over ``book``."""
    content = _dump(dashboard, exclude={"status"})
    part, reads_pathway = _Index(book).facts_part(_names(_walk(content, "fact")))
    outputs = _names(_walk(content, "output"))
    used = {o.split(".", 1)[0] for o in outputs if "." in o}
    used |= _names(_walk(content.get("findings") or {}, "rulesets"))
    hashes = approval_state(book).hashes
    return hashlib.sha256(_canonical({
        "kind": DASHBOARD, "content": content, **part,
        "pathway": hashes[PATHWAY] if reads_pathway else None,
        "rulesets": {r: hashes.get(r) for r in sorted(used)},
    })).hexdigest()


def dashboard_status(book: Rulebook, dashboard: DashboardFile) -> str:
    """The status reports give a dashboard declaration (``DashboardFile``) over ``book``."""
    approvals = approval_state(book)
    return effective_status(dashboard.status, dashboard.version,
                            dashboard_hash(book, dashboard), approvals.for_target(DASHBOARD))


# -- loading ----------------------------------------------------------------------------------


def approvals_path(rulebook_dir: Path) -> Path:
    """Where a rulebook's approval records live: ``approvals.yaml`` beside ``rulebook.yaml``."""
    return rulebook_dir / APPROVALS_FILE


def load_approvals(path: Path, shown: str, rulebook_id: str
                   ) -> tuple[ApprovalsFile, tuple[Location, ...]]:
    """Read and validate an approvals file. Raises RulesetError naming file:line:column."""
    raw = load_yaml(path, shown)
    model = validate_located(ApprovalsFile, raw, shown,
                             "unknown key (an approval has target, version, sha256, by, role, "
                             "date, notes)", unknown_at_key=True)
    if model.approvals_for != rulebook_id:
        raise RulesetError(locate(raw, ("approvals_for",), shown),
                           f"these approvals are for rulebook {model.approvals_for!r}, not "
                           f"{rulebook_id!r}", "approvals_for")
    locations = tuple(locate(raw, ("approvals", i), shown) for i in range(len(model.approvals)))
    return model, locations


def build_approvals(book: Rulebook, path: Path | None) -> Approvals:
    """The approvals of ``book``: its records (from ``path`` if given and present), content
    hashes, declared versions and statuses, and the status of each target."""
    records: tuple[ApprovalRecord, ...] = ()
    locations: tuple[Location, ...] = ()
    shown: str | None = None
    if path is not None and path.is_file():
        shown = shown_path(path, book.directory)
        model, locations = load_approvals(path, shown, book.id)
        records = tuple(model.approvals)
    hashes = content_hashes(book)
    declared: dict[str, str] = {rs.id: rs.definition.status for rs in book.rulesets}
    declared[PATHWAY] = book.pathway.status
    versions = {rs.id: rs.definition.version for rs in book.rulesets}
    versions[PATHWAY] = book.pathway.version
    statuses = {
        t: effective_status(declared[t], versions[t], hashes[t],
                            (r for r in records if r.target == t))
        for t in hashes
    }
    return Approvals(shown, records, locations, hashes, declared, versions, statuses)


def attach_approvals(book: Rulebook) -> Rulebook:
    """``book`` with its approvals (from ``approvals.yaml`` beside its manifest) computed once."""
    from dataclasses import replace

    return replace(book, approvals=build_approvals(book, approvals_path(book.directory)))


def records_text(records: Sequence[ApprovalRecord]) -> str:
    """A short human line per record: ``0.2.0 approved 2026-12-01 by NAME (ROLE)``."""
    return "; ".join(f"{r.version} approved {r.date} by {r.by} ({r.role})" for r in records)
