"""The hazard log (DCB0129) as data, and the checks that tie it to the rules and the tests.

``docs/safety/hazard-log.yaml`` holds the scales (severity, likelihood), the risk matrix and the
hazards, each in DCB0129 form: id, title, description, cause, effect, possible harm, initial
severity / likelihood / risk, controls, residual severity / likelihood / risk and status. Every
control names the rule ids that implement it and the tests (pytest node ids, e.g.
``tests/test_review_hazards.py::test_every_hazard_has_a_control``) that verify it.

:func:`check_hazard_log` reports, as :class:`~int_rules.review.findings.Finding`:

* ``hazard-log``: the file does not fit the schema (located ``file:line:column``);
* ``hazard-duplicate``: two hazards share an id;
* ``hazard-no-control``: a hazard has no control;
* ``hazard-unknown-rule``: a control names a rule (or pathway item) that does not exist;
* ``hazard-unknown-test``: a control names a test file or test function that does not exist
  (checked by parsing the test file, not by running it);
* ``hazard-unknown``: a rule or pathway transition names a hazard id that is not in the log;
* ``hazard-risk``: a risk does not match the matrix for its severity and likelihood;
* ``hazard-untested-control`` (warning): a control names no test;
* ``hazard-residual`` (warning): the residual risk is higher than the initial risk;
* ``hazard-owner``: a hazard marked mitigated or closed names no owner;
* ``hazard-unevidenced``: a hazard marked mitigated has no control naming a test (its evidence);
* ``hazard-review-date`` (warning): an open or mitigated hazard has no review date.

A hazard is shown as mitigated (:func:`shown_status`) only with an owner and its evidence.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import Location, RulesetError
from ..language.yamlsrc import load_yaml as read_yaml
from ..language.yamlsrc import locate
from .findings import Finding

__all__ = [
    "Control",
    "Hazard",
    "HazardLog",
    "HazardRef",
    "LoadedHazardLog",
    "check_hazard_log",
    "default_hazard_log_path",
    "load_hazard_log",
    "test_exists",
]

_STRICT = ConfigDict(extra="forbid", frozen=True)
Text = Annotated[str, Field(min_length=1)]
HazardId = Annotated[str, Field(pattern=r"^HAZ-[0-9]{3}$")]
TestId = Annotated[str, Field(pattern=r"^[^:\s]+\.py(::[A-Za-z_][A-Za-z0-9_]*){1,2}(\[.*\])?$")]


class ScaleLevel(BaseModel):
    """One level of a severity or likelihood scale."""

    model_config = _STRICT
    name: Text
    description: Text


class RiskLevel(BaseModel):
    """What a risk rating means and what it requires."""

    model_config = _STRICT
    name: Text
    action: Text


class Risk(BaseModel):
    """A severity and likelihood, and the risk rating the matrix gives them."""

    model_config = _STRICT
    severity: Text
    likelihood: Text
    risk: int = Field(ge=1, le=5)


class Control(BaseModel):
    """A measure that reduces a hazard's risk, with the rules and tests that implement it."""

    model_config = _STRICT
    description: Text
    rules: tuple[str, ...] = ()
    tests: tuple[TestId, ...] = ()


class Hazard(BaseModel):
    """One hazard in DCB0129 form."""

    model_config = _STRICT
    id: HazardId
    title: Text
    description: Text
    cause: Text
    effect: Text
    harm: Text
    initial: Risk
    controls: tuple[Control, ...] = ()
    residual: Risk
    status: Literal["open", "mitigated", "closed", "transferred"]
    owner: Text | None = Field(default=None, description="who is answerable for this hazard")
    review_date: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = Field(
        default=None, description="when the owner next reviews it (YYYY-MM-DD)")
    notes: str | None = None


class HazardLog(BaseModel):
    """``docs/safety/hazard-log.yaml``."""

    model_config = _STRICT
    hazard_log: Text = Field(description="The rulebook id this log is for")
    title: Text
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    standard: Text
    severity: tuple[ScaleLevel, ...] = Field(min_length=1)
    likelihood: tuple[ScaleLevel, ...] = Field(min_length=1)
    risk_matrix: dict[str, dict[str, int]]
    risk_levels: dict[int, RiskLevel]
    hazards: tuple[Hazard, ...] = Field(min_length=1)

    def hazard(self, hazard_id: str) -> Hazard:
        for h in self.hazards:
            if h.id == hazard_id:
                return h
        raise KeyError(hazard_id)


@dataclass(frozen=True)
class LoadedHazardLog:
    """A parsed hazard log with the YAML it came from (for locating findings)."""

    log: HazardLog
    raw: Any
    file: str
    path: Path

    def location(self, *path: int | str) -> Location:
        return locate(self.raw, path, self.file)


@dataclass(frozen=True)
class HazardRef:
    """A rule (or pathway item) that names a hazard, and where."""

    hazard: str
    item: str
    location: Location | None


def default_hazard_log_path(rulebook_dir: Path) -> Path:
    """Where a rulebook's hazard log lives: ``<rulebook>/../docs/safety/hazard-log.yaml``."""
    return rulebook_dir.resolve().parent / "docs" / "safety" / "hazard-log.yaml"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_hazard_log(path: str | Path, display_name: str | None = None
                    ) -> tuple[LoadedHazardLog | None, list[Finding]]:
    """Parse a hazard log; on a schema problem return ``None`` and located findings."""
    p = Path(path)
    shown = display_name or _shown(p)
    try:
        raw = read_yaml(p, shown)
    except RulesetError as exc:
        return None, [Finding.at(exc.location, "hazard-log", "error", exc.message, exc.key)]
    try:
        log = HazardLog.model_validate(raw)
    except ValidationError as exc:
        out = []
        for err in exc.errors(include_url=False):
            loc = locate(raw, err["loc"], shown)
            key = ".".join(str(x) for x in err["loc"]) or None
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "required key is missing"
            elif err["type"] == "extra_forbidden":
                msg = "unknown key"
            out.append(Finding.at(loc, "hazard-log", "error", msg, key))
        return None, out
    return LoadedHazardLog(log, raw, shown, p), []


# -- tests named by controls ------------------------------------------------------------------


def _test_names(path: Path, cache: dict[Path, set[str] | None]) -> set[str] | None:
    """``func`` and ``Class::method`` names of the tests defined in a file (None: no file)."""
    if path not in cache:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, SyntaxError, UnicodeDecodeError):
            cache[path] = None
            return None
        names: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(f"{node.name}::{item.name}")
        cache[path] = names
    return cache[path]


def test_exists(test_id: str, project_root: Path,
                cache: dict[Path, set[str] | None] | None = None) -> str | None:
    """None if the pytest node id names a test defined in the project, else why not."""
    cache = {} if cache is None else cache
    node = test_id.split("[", 1)[0]
    file, _, name = node.partition("::")
    path = project_root / file
    names = _test_names(path, cache)
    if names is None:
        return f"test file {file} does not exist (or does not parse)"
    if name not in names:
        return f"{file} defines no test {name!r}"
    return None


test_exists.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


# -- the checks -------------------------------------------------------------------------------


def check_hazard_log(
    loaded: LoadedHazardLog,
    rule_ids: Iterable[str],
    hazard_refs: Iterable[HazardRef],
    project_root: Path,
    rulebook_id: str | None = None,
) -> list[Finding]:
    """Every check in the module docstring. ``rule_ids``: every rule, pathway transition,
    same-day rule and pathway finding id of the rulebook; ``hazard_refs``: every hazard id a
    rule or pathway item names."""
    log = loaded.log
    known_rules = set(rule_ids)
    out: list[Finding] = []
    cache: dict[Path, set[str] | None] = {}

    def add(path: tuple[int | str, ...], check: str, message: str, key: str | None,
            severity: Literal["error", "warning", "info"] = "error") -> None:
        out.append(Finding.at(loaded.location(*path), check, severity, message, key))

    if rulebook_id is not None and log.hazard_log != rulebook_id:
        add(("hazard_log",), "hazard-log", f"this hazard log is for rulebook {log.hazard_log!r}, "
                                           f"not {rulebook_id!r}", "hazard_log")

    # An installed wheel carries the hazard log but not the test suite: say so once, rather
    # than report every test a control names as missing.
    tests_present = (project_root / "tests").is_dir()
    if not tests_present:
        out.append(Finding("hazards-tests-skipped", "info",
                           f"no tests/ folder under {project_root}: the tests that controls "
                           "name were not checked (run lint in the source tree for that)"))
    severities = [s.name for s in log.severity]
    likelihoods = [s.name for s in log.likelihood]
    for lk in likelihoods:
        row = log.risk_matrix.get(lk)
        if row is None or sorted(row) != sorted(severities):
            add(("risk_matrix",), "hazard-log", f"the risk matrix needs a row for likelihood "
                                                f"{lk!r} with a rating for every severity "
                                                f"({', '.join(severities)})", "risk_matrix")
    for lk in log.risk_matrix:
        if lk not in likelihoods:
            add(("risk_matrix", lk), "hazard-log", f"{lk!r} is not a likelihood level",
                "risk_matrix")

    seen: dict[str, int] = {}
    for i, h in enumerate(log.hazards):
        key = h.id
        if h.id in seen:
            add(("hazards", i, "id"), "hazard-duplicate",
                f"hazard id {h.id} is used twice (also hazard #{seen[h.id] + 1})", key)
        seen.setdefault(h.id, i)
        for stage in ("initial", "residual"):
            risk: Risk = getattr(h, stage)
            path: tuple[int | str, ...] = ("hazards", i, stage)
            if risk.severity not in severities:
                add((*path, "severity"), "hazard-risk", f"{stage} severity {risk.severity!r} is "
                                                        f"not one of {', '.join(severities)}", key)
                continue
            if risk.likelihood not in likelihoods:
                add((*path, "likelihood"), "hazard-risk",
                    f"{stage} likelihood {risk.likelihood!r} is not one of "
                    f"{', '.join(likelihoods)}", key)
                continue
            expected = log.risk_matrix.get(risk.likelihood, {}).get(risk.severity)
            if expected is not None and expected != risk.risk:
                add((*path, "risk"), "hazard-risk",
                    f"{stage} risk is {risk.risk}, but the matrix gives {expected} for "
                    f"{risk.severity} severity and {risk.likelihood} likelihood", key)
        if h.residual.risk > h.initial.risk:
            add(("hazards", i, "residual", "risk"), "hazard-residual",
                f"residual risk {h.residual.risk} is higher than the initial risk "
                f"{h.initial.risk}", key, "warning")
        if h.status in ("mitigated", "closed") and not h.owner:
            add(("hazards", i, "status"), "hazard-owner",
                f"hazard {h.id} is {h.status} but names no owner: add 'owner:' (the role "
                "answerable for it)", key)
        if h.status == "mitigated" and not any(c.tests for c in h.controls):
            add(("hazards", i, "status"), "hazard-unevidenced",
                f"hazard {h.id} is mitigated but no control names a test that verifies it", key)
        if h.status in ("open", "mitigated") and not h.review_date:
            add(("hazards", i), "hazard-review-date",
                f"hazard {h.id} has no review date: add 'review_date: YYYY-MM-DD'", key,
                "warning")
        if not h.controls:
            add(("hazards", i), "hazard-no-control",
                f"hazard {h.id} has no control: name the rules that prevent it and the tests "
                "that verify them", key)
        for c, control in enumerate(h.controls):
            cpath: tuple[int | str, ...] = ("hazards", i, "controls", c)
            if not control.rules and not control.tests:
                add(cpath, "hazard-no-control", "a control must name the rules that implement "
                                                "it or the tests that verify it (or both)", key)
            elif not control.tests:
                add(cpath, "hazard-untested-control",
                    f"control {c + 1} of {h.id} names no test that verifies it", key, "warning")
            for r, rule in enumerate(control.rules):
                if rule not in known_rules:
                    add((*cpath, "rules", r), "hazard-unknown-rule",
                        f"control names rule {rule!r}, which is not a rule or pathway item of "
                        "this rulebook", key)
            for t, test in enumerate(control.tests):
                if not tests_present:
                    break
                problem = test_exists(test, project_root, cache)
                if problem is not None:
                    add((*cpath, "tests", t), "hazard-unknown-test",
                        f"control names test {test}: {problem}", key)

    for ref in hazard_refs:
        if ref.hazard not in seen:
            out.append(Finding.at(ref.location, "hazard-unknown", "error",
                                  f"{ref.item} names hazard {ref.hazard}, which is not in the "
                                  f"hazard log ({loaded.file})", ref.item))
    return out


def rules_naming(refs: Iterable[HazardRef]) -> Mapping[str, tuple[str, ...]]:
    """Hazard id -> the rule and pathway item ids that name it, in first-seen order."""
    out: dict[str, list[str]] = {}
    for ref in refs:
        items = out.setdefault(ref.hazard, [])
        if ref.item not in items:
            items.append(ref.item)
    return {h: tuple(v) for h, v in out.items()}


def shown_status(hazard: Hazard, problems: Iterable[Finding] = ()) -> str:
    """The status the safety case shows: ``mitigated`` only with an owner and evidence (a
    control naming a test, and no lint error about this hazard's rules or tests)."""
    if hazard.status != "mitigated":
        return hazard.status
    missing = []
    if not hazard.owner:
        missing.append("no owner")
    if not any(c.tests for c in hazard.controls):
        missing.append("no test")
    if any(f.key == hazard.id and f.severity == "error" and f.check in
           ("hazard-unknown-rule", "hazard-unknown-test", "hazard-no-control") for f in problems):
        missing.append("evidence missing")
    return "mitigated" if not missing else f"open (not evidenced: {', '.join(missing)})"
