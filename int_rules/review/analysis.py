"""Decision analysis: overlapping rules, gaps and rules that can never fire, each with an example.

A rule's condition reads facts; each fact has a *domain*. The analysis replaces each domain by a
few representative values that together cover every case the rules can tell apart:

* a **bool** fact: true, false;
* a **category** fact: each of its declared values, and "not recorded" where it can be missing;
* a **number** fact: every threshold the rulebook compares it with, and a value just below and
  just above each (whole numbers for counts and ages; counts and ages are never negative);
* a **date** fact: as a number of days before the as-of date, from the ``within_days`` and
  ``older_than_days`` thresholds it is tested with (N and N + 1 days before, the as-of date
  itself), plus values between them where two dates are compared with each other;
* a **text** fact: each literal it is compared with, and one other text.

Derived facts are not free: they are computed from the facts they read, by their own condition.
The search then looks, exactly over this finite abstraction, for an input where a combination of
rule conditions holds (e.g. two rules of a ``unique`` decision both hold; no rule of a
``complete`` decision holds; a ``first`` rule holds and no earlier rule does). It assigns one
fact at a time and evaluates the conditions in three-valued logic on the partial input, pruning
as soon as the combination is decided, so only the facts that matter appear in an example.
Every example found is re-checked with the rulebook's own compiled conditions.

Two limits, said plainly in every report:

* base facts are treated as independent, so an overlap or gap example may combine values no
  real record can produce (e.g. a person on the caseload with no enrolment date). A "never
  fires" finding is certain: no input of any record makes that rule fire.
* the search is bounded (``max_nodes`` partial inputs per question); a question it cannot
  settle within the bound is reported as not settled, never as settled.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..conditions import compile_condition, facts_read, leaves
from ..facts import FactType
from ..language.plain import format_value
from ..language.schema import AllOf, AnyOf, Condition, FactDef, FactRef, Leaf, Not, ParamRef
from ..record import PatientRecord

if TYPE_CHECKING:
    from ..rulebook import CompiledRule, CompiledRuleset, Rulebook

__all__ = [
    "AS_OF",
    "DEFAULT_MAX_NODES",
    "Abstraction",
    "DecisionFinding",
    "RulesetAnalysis",
    "analyse_rulebook",
    "analyse_ruleset",
    "display_value",
]

#: The as-of date of every abstract input. Dates are shown as days before it, never as dates.
AS_OF = dt.date(2000, 1, 1)
#: The default bound on partial inputs explored to settle one question.
DEFAULT_MAX_NODES = 100_000

Check = Literal["overlap", "gap", "subsumed", "never-fires", "priority-tie", "not-settled"]


class _Unknown:
    """The value of a fact not yet assigned in a partial input."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
_OTHER_TEXT = "(any other text)"


class _BudgetExceeded(Exception):
    pass


@dataclass(frozen=True)
class DecisionFinding:
    """A finding about a decision, with the example input that shows it (if there is one)."""

    check: Check
    ruleset: str
    rule: CompiledRule | None
    rules: tuple[str, ...]
    message: str
    example: Mapping[str, str] | None = None
    witness: Mapping[str, Any] | None = None  # the example's raw values (dates relative to AS_OF)


@dataclass(frozen=True)
class RulesetAnalysis:
    """What the analysis of one ruleset found and how far it looked."""

    ruleset: str
    hit_policy: str
    complete: bool
    facts: tuple[str, ...]  # the base facts its rules read (directly or through derived facts)
    abstract_inputs: int  # size of the product of their representative values
    questions: int
    settled: int
    nodes: int
    findings: tuple[DecisionFinding, ...] = field(default=())

    @property
    def exhaustive(self) -> bool:
        return self.settled == self.questions

    def summary(self) -> str:
        scope = (f"{len(self.facts)} facts, {self.abstract_inputs:,} abstract inputs; "
                 f"{self.settled} of {self.questions} questions settled")
        bound = "" if self.exhaustive else " (search bound reached: not exhaustive)"
        return f"ruleset {self.ruleset} ({self.hit_policy}): {scope}{bound}"


def display_value(value: Any) -> str:
    """An abstract value as a reviewer reads it: dates as days before the as-of date."""
    if isinstance(value, dt.date):
        days = (AS_OF - value).days
        if days == 0:
            return "the as-of date"
        return f"{days} day{'s' if days != 1 else ''} before the as-of date"
    if value is None:
        return "not recorded"
    if isinstance(value, str):
        return value
    return format_value(value)


# -- domains ----------------------------------------------------------------------------------

_NULLABLE_KINDS = frozenset({"latest_date", "first_date", "latest_value", "latest_of"})
_NON_NEGATIVE_KINDS = frozenset({"count", "age"})


def _attribute_nullable(field_name: str) -> bool:
    info = PatientRecord.model_fields.get(field_name)
    if info is None:
        return True
    ann = info.annotation
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(ann)
    return False


def _nullable(fdef: FactDef) -> bool:
    if fdef.kind in _NULLABLE_KINDS:
        return True
    if fdef.kind == "pathway":
        return fdef.field == "entered"
    if fdef.kind == "attribute":
        return _attribute_nullable(fdef.field or "")
    return False


def _non_negative(fdef: FactDef) -> bool:
    return fdef.kind in _NON_NEGATIVE_KINDS or (fdef.kind == "pathway"
                                                 and fdef.field == "findings")


class _Union:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _int_points(thresholds: Sequence[float], rich: bool) -> set[int]:
    points: set[int] = set()
    for t in thresholds:
        lo, hi = math.floor(t), math.ceil(t)
        points.update((lo - 1, lo, hi, hi + 1))
    if rich and points:
        points.add(max(points) + 1)
    return points


def _number_points(thresholds: Sequence[float], rich: bool) -> set[float]:
    ts = sorted(set(thresholds))
    if not ts:
        return set()
    points = set(ts)
    points.update((ts[0] - 1, ts[-1] + 1))
    for a, b in itertools.pairwise(ts):
        points.add((a + b) / 2)
    if rich:
        points.add(ts[-1] + 2)
    return {float(p) for p in points}


def _day_points(thresholds: Sequence[int], rich: bool) -> list[int]:
    offsets = {0}
    for n in thresholds:
        offsets.update((n, n + 1))
    if rich:
        ordered = sorted(offsets)
        for a, b in itertools.pairwise(ordered):
            if b - a > 1:
                offsets.add((a + b) // 2)
        top = max(offsets)
        offsets.update((top + 1, top + 2))
    return sorted(offsets)


# -- the abstraction --------------------------------------------------------------------------


@dataclass
class _LeafInfo:
    names: tuple[str, ...]
    test: Callable[[Mapping[str, Any]], bool]


class Abstraction:
    """The representative values of every fact of a rulebook, and a three-valued evaluator."""

    def __init__(self, book: Rulebook) -> None:
        self.book = book
        defs = book.facts_file.facts
        self.types: dict[str, FactType] = {n: f.type for n, f in book.facts.items()}
        self.derived: dict[str, Condition] = {
            n: d.when for n, d in defs.items() if d.kind == "derived" and d.when is not None
        }
        self._leaf_cache: dict[tuple[int, int], _LeafInfo] = {}
        self._keep: list[Any] = []
        self._base_cache: dict[str, tuple[str, ...]] = {}

        literals: dict[str, set[Any]] = {}
        days: dict[str, set[int]] = {}
        links = _Union()
        linked: set[str] = set()
        contexts: list[tuple[Condition, Mapping[str, Any]]] = [
            (rule.definition.when, rs.params) for rs in book.rulesets for rule in rs.rules
        ]
        contexts += [(cond, book.fact_params) for cond in self.derived.values()]
        for cond, params in contexts:
            for leaf in leaves(cond):
                op, operand = leaf.op, leaf.operand
                if op == "present":
                    continue
                if isinstance(operand, FactRef):
                    links.join(leaf.fact, operand.fact)
                    linked.update((leaf.fact, operand.fact))
                    continue
                if isinstance(operand, ParamRef):
                    if operand.param not in params:
                        continue
                    operand = params[operand.param]
                if op in ("within_days", "older_than_days"):
                    if isinstance(operand, int) and not isinstance(operand, bool):
                        days.setdefault(leaf.fact, set()).add(operand)
                    continue
                values = operand if isinstance(operand, list) else [operand]
                literals.setdefault(leaf.fact, set()).update(values)

        # Facts compared with each other share their thresholds.
        comp_literals: dict[str, set[Any]] = {}
        comp_days: dict[str, set[int]] = {}
        for name in linked:
            root = links.find(name)
            comp_literals.setdefault(root, set()).update(literals.get(name, ()))
            comp_days.setdefault(root, set()).update(days.get(name, ()))

        self.domains: dict[str, tuple[Any, ...]] = {}
        for name, fdef in defs.items():
            if name in self.derived or name not in self.types:
                continue
            rich = name in linked
            lits = comp_literals[links.find(name)] if rich else literals.get(name, set())
            if fdef.kind == "constant":  # a local setting: its value now, and the thresholds
                current: Any = fdef.value
                if isinstance(current, ParamRef):
                    current = book.fact_params.get(current.param)
                lits = {*lits, current}
            dys = comp_days[links.find(name)] if rich else days.get(name, set())
            self.domains[name] = self._domain(fdef, self.types[name], lits, dys, rich)

    @staticmethod
    def _domain(fdef: FactDef, ftype: FactType, literals: set[Any], days: set[int],
                rich: bool) -> tuple[Any, ...]:
        points: list[Any]
        kind = ftype.kind
        if kind == "bool":
            points = [False, True]
        elif kind == "category":
            points = list(ftype.values or ())
            extra = sorted(v for v in literals if isinstance(v, str) and v not in points)
            points += extra
        elif kind == "text":
            points = [*sorted(v for v in literals if isinstance(v, str)), _OTHER_TEXT]
        elif kind in ("int", "number"):
            nums = [float(v) for v in literals
                    if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if kind == "int":
                ints = _int_points(nums, rich) or {0}
                if _non_negative(fdef) or (fdef.kind == "constant" and nums
                                           and min(nums) >= 0):
                    ints = {i for i in ints if i >= 0} or {0}
                points = sorted(ints)
            else:
                floats = _number_points(nums, rich) or {0.0}
                points = sorted(floats)
        else:  # date
            points = [AS_OF - dt.timedelta(days=k) for k in _day_points(sorted(days), rich)]
        if _nullable(fdef):
            points.append(None)
        return tuple(points)

    # -- evaluation ---------------------------------------------------------------------------

    def _leaf(self, leaf: Leaf, params: Mapping[str, Any]) -> _LeafInfo:
        key = (id(leaf), id(params))
        info = self._leaf_cache.get(key)
        if info is None:
            operand = leaf.operand
            names = (leaf.fact, operand.fact) if isinstance(operand, FactRef) else (leaf.fact,)
            info = _LeafInfo(names, compile_condition(leaf, self.types, params).test)
            self._leaf_cache[key] = info
            self._keep.append((leaf, params))
        return info

    def value(self, name: str, assignment: Mapping[str, Any], memo: dict[str, Any]) -> Any:
        """A fact's value under a partial input: its assigned value, a derived fact's value if
        it is already decided, or UNKNOWN."""
        if name in assignment:
            return assignment[name]
        cond = self.derived.get(name)
        if cond is None:
            return UNKNOWN
        if name not in memo:
            result = self.evaluate(cond, self.book.fact_params, assignment, memo)
            memo[name] = UNKNOWN if result is None else result
        return memo[name]

    def evaluate(self, cond: Condition, params: Mapping[str, Any],
                 assignment: Mapping[str, Any], memo: dict[str, Any]) -> bool | None:
        """Three-valued: True or False when the partial input decides ``cond``, else None.

        Leaves are evaluated by the rulebook's own compiled tests, so a decided value is
        exactly what every engine computes on any completion of the partial input.
        """
        if isinstance(cond, Leaf):
            info = self._leaf(cond, params)
            values: dict[str, Any] = {"__as_of__": AS_OF}
            for name in info.names:
                v = self.value(name, assignment, memo)
                if v is UNKNOWN:
                    return None
                values[name] = v
            return info.test(values)
        if isinstance(cond, Not):
            inner = self.evaluate(cond.not_, params, assignment, memo)
            return None if inner is None else not inner
        if isinstance(cond, AllOf):
            undecided = False
            for part in cond.all:
                r = self.evaluate(part, params, assignment, memo)
                if r is False:
                    return False
                if r is None:
                    undecided = True
            return None if undecided else True
        assert isinstance(cond, AnyOf)
        undecided = False
        for part in cond.any:
            r = self.evaluate(part, params, assignment, memo)
            if r is True:
                return True
            if r is None:
                undecided = True
        return None if undecided else False

    def base_facts(self, cond: Condition) -> tuple[str, ...]:
        """The non-derived facts a condition reads, through derived facts, in first-seen order."""
        out: list[str] = []

        def visit(name: str, seen: set[str]) -> None:
            if name in seen:
                return
            seen.add(name)
            if name in self.derived:
                for inner in facts_read(self.derived[name]):
                    visit(inner, seen)
            elif name not in out:
                out.append(name)

        seen: set[str] = set()
        for name in facts_read(cond):
            visit(name, seen)
        return tuple(out)

    def complete_values(self, assignment: Mapping[str, Any],
                        names: Sequence[str]) -> dict[str, Any]:
        """Concrete values of every fact: the assignment, the first representative value of
        the unassigned base facts, and each derived fact computed by its compiled condition."""
        values: dict[str, Any] = {"__as_of__": AS_OF}
        for name in names:
            if name in self.domains:
                values[name] = assignment.get(name, self.domains[name][0])
        for name in self.book.fact_order:
            if name in self.derived:
                values[name] = compile_condition(self.derived[name], self.types,
                                                 self.book.fact_params).test(values)
        return values

    def search(self, targets: Sequence[tuple[Condition, Mapping[str, Any], bool]],
               max_nodes: int) -> tuple[dict[str, Any] | None, bool, int]:
        """Find a partial input where every ``(condition, params, wanted)`` holds as wanted.

        Returns ``(assignment or None, settled, nodes explored)``; ``settled`` is False when the
        bound was reached before an answer.
        """
        counts: dict[str, int] = {}
        for cond, _, _ in targets:
            for name in self.base_facts(cond):
                counts[name] = counts.get(name, 0) + 1
        order = sorted(counts, key=lambda n: (-counts[n], len(self.domains.get(n, ())), n))
        order = [n for n in order if n in self.domains]
        assignment: dict[str, Any] = {}
        nodes = 0

        def status() -> int:
            memo: dict[str, Any] = {}
            decided = True
            for cond, params, wanted in targets:
                r = self.evaluate(cond, params, assignment, memo)
                if r is None:
                    decided = False
                elif r is not wanted:
                    return -1
            return 1 if decided else 0

        def dfs(i: int) -> bool:
            nonlocal nodes
            nodes += 1
            if nodes > max_nodes:
                raise _BudgetExceeded
            s = status()
            if s != 0:
                return s == 1
            if i == len(order):
                return False
            name = order[i]
            for v in self.domains[name]:
                assignment[name] = v
                if dfs(i + 1):
                    return True
            del assignment[name]
            return False

        try:
            found = dfs(0)
        except _BudgetExceeded:
            return None, False, nodes
        if not found:
            return None, True, nodes
        # Keep only the facts the answer depends on: drop each one the targets do not need.
        for name in reversed(list(assignment)):
            value = assignment.pop(name)
            if status() != 1:
                assignment[name] = value
        return dict(assignment), True, nodes


# -- the questions ----------------------------------------------------------------------------


class _Analyser:
    def __init__(self, abstraction: Abstraction, rs: CompiledRuleset, max_nodes: int) -> None:
        self.a = abstraction
        self.rs = rs
        self.params = rs.params
        self.max_nodes = max_nodes
        self.questions = 0
        self.settled = 0
        self.nodes = 0
        self.findings: list[DecisionFinding] = []

    def ask(self, targets: Sequence[tuple[CompiledRule, bool]]
            ) -> tuple[dict[str, Any] | None, bool]:
        self.questions += 1
        found, settled, nodes = self.a.search(
            [(r.definition.when, self.params, want) for r, want in targets], self.max_nodes)
        self.nodes += nodes
        if settled:
            self.settled += 1
        if found is not None:
            self._verify(found, targets)
        return found, settled

    def _verify(self, assignment: Mapping[str, Any],
                targets: Sequence[tuple[CompiledRule, bool]]) -> None:
        values = self.a.complete_values(assignment, list(self.a.domains))
        for rule, want in targets:
            if rule.condition.test(values) is not want:  # pragma: no cover - a bug guard
                raise AssertionError(
                    f"decision analysis disagrees with the compiled rule {rule.id} on "
                    f"{assignment!r}; please report this")

    def example(self, assignment: Mapping[str, Any],
                rules: Sequence[CompiledRule]) -> dict[str, str]:
        """The assigned facts, then the derived facts the rules read, in display form."""
        out: dict[str, str] = {}
        memo: dict[str, Any] = {}
        read: list[str] = []
        for rule in rules:
            for name in rule.condition.facts:
                if name not in read:
                    read.append(name)
        for name in read:
            if name in assignment:
                out[name] = display_value(assignment[name])
        for name in sorted(assignment, key=lambda n: self.a.book.fact_order.index(n)):
            if name not in out:
                out[name] = display_value(assignment[name])
        for name in read:
            if name in self.a.derived:
                v = self.a.value(name, assignment, memo)
                if v is not UNKNOWN:
                    out[name] = f"{display_value(v)} (derived)"
        return out

    def fired(self, assignment: Mapping[str, Any]) -> list[CompiledRule]:
        values = self.a.complete_values(assignment, list(self.a.domains))
        return [r for r in self.rs.rules if r.condition.test(values)]

    def add(self, check: Check, rule: CompiledRule | None, rules: Sequence[CompiledRule],
            message: str, witness: Mapping[str, Any] | None = None) -> None:
        example = self.example(witness, rules) if witness is not None else None
        self.findings.append(DecisionFinding(check, self.rs.id, rule,
                                             tuple(r.id for r in rules), message, example,
                                             dict(witness) if witness is not None else None))

    def not_settled(self, rule: CompiledRule | None, rules: Sequence[CompiledRule],
                    question: str) -> None:
        self.add("not-settled", rule, rules,
                 f"{question}: not settled within the search bound ({self.max_nodes:,} partial "
                 "inputs); raise --max-nodes or split the ruleset")

    def run(self) -> RulesetAnalysis:
        rs = self.rs
        rules = list(rs.rules)
        policy = rs.definition.hit_policy
        satisfiable: dict[str, dict[str, Any] | None] = {}
        for rule in rules:
            found, settled = self.ask([(rule, True)])
            satisfiable[rule.id] = found
            if not settled:
                self.not_settled(rule, [rule], f"whether rule {rule.id} can ever fire")
            elif found is None:
                self.add("never-fires", rule, [rule],
                         "can never fire: its condition is false for every input")

        live = [r for r in rules if satisfiable[r.id] is not None]
        if policy == "unique":
            self._overlaps(live)
        elif policy in ("first", "priority"):
            self._shadowed(rules, satisfiable, policy)
        if rs.definition.complete:
            self._gaps(rules)

        facts: list[str] = []
        for rule in rules:
            for name in self.a.base_facts(rule.definition.when):
                if name not in facts and name in self.a.domains:
                    facts.append(name)
        size = 1
        for name in facts:
            size *= len(self.a.domains[name])
        return RulesetAnalysis(rs.id, policy, rs.definition.complete, tuple(facts), size,
                               self.questions, self.settled, self.nodes, tuple(self.findings))

    def _overlaps(self, live: Sequence[CompiledRule]) -> None:
        for i, a in enumerate(live):
            for b in live[i + 1:]:
                found, settled = self.ask([(a, True), (b, True)])
                if not settled:
                    self.not_settled(b, [a, b], f"whether rules {a.id} and {b.id} overlap")
                elif found is not None:
                    self.add("overlap", b, [a, b],
                             f"{a.id} and {b.id} can both fire for one input, but the hit "
                             "policy is 'unique' (the engine raises HitPolicyError for such a "
                             "record)", found)

    def _beats(self, rules: Sequence[CompiledRule], i: int, policy: str) -> list[CompiledRule]:
        """The rules that win over ``rules[i]`` when both hold."""
        if policy == "first":
            return list(rules[:i])
        mine = rules[i].definition.priority or 0
        return [r for j, r in enumerate(rules)
                if (r.definition.priority or 0) > mine
                or ((r.definition.priority or 0) == mine and j < i)]

    def _shadowed(self, rules: Sequence[CompiledRule],
                  witness: Mapping[str, dict[str, Any] | None], policy: str) -> None:
        live = [r for r in rules if witness[r.id] is not None]
        live_ids = {r.id for r in live}
        for i, rule in enumerate(rules):
            if rule.id not in live_ids:
                continue
            winners = [r for r in self._beats(rules, i, policy) if r.id in live_ids]
            if not winners:
                continue
            found, settled = self.ask([(rule, True)] + [(w, False) for w in winners])
            if not settled:
                self.not_settled(rule, [rule], f"whether rule {rule.id} can ever fire")
                continue
            if found is not None:
                continue
            culprits = []
            for w in winners:
                alone, ok = self.ask([(rule, True), (w, False)])
                if ok and alone is None:
                    culprits = [w]
                    break
            if not culprits:
                culprits = [w for w in winners
                            if self.ask([(rule, True), (w, True)])[0] is not None]
            example_input = witness[rule.id]
            assert example_input is not None
            fires = [r for r in self.fired(example_input) if r.id != rule.id]
            winner = self._winner(fires, rules, policy)
            word = "an earlier" if policy == "first" else "a higher-priority"
            by = ", ".join(c.id for c in culprits)
            self.add("subsumed", rule, [rule, *culprits],
                     f"can never fire: whenever its condition holds, {word} "
                     f"rule wins ({by}); in the example {winner.id if winner else by} fires "
                     "instead", example_input)

        if policy == "priority":
            for i, a in enumerate(live):
                for b in live[i + 1:]:
                    if (a.definition.priority or 0) != (b.definition.priority or 0):
                        continue
                    found, settled = self.ask([(a, True), (b, True)])
                    if settled and found is not None:
                        self.add("priority-tie", b, [a, b],
                                 f"{a.id} and {b.id} have the same priority "
                                 f"({a.definition.priority}) and can both hold; {a.id} wins only "
                                 "because it comes first in the file", found)

    def _winner(self, fired: Sequence[CompiledRule], rules: Sequence[CompiledRule],
                policy: str) -> CompiledRule | None:
        if not fired:
            return None
        if policy == "first":
            return fired[0]
        return max(fired, key=lambda r: r.definition.priority or 0)

    def _gaps(self, rules: Sequence[CompiledRule]) -> None:
        found, settled = self.ask([(r, False) for r in rules])
        if not settled:
            self.not_settled(None, list(rules), "whether every input gets an outcome")
        elif found is not None:
            self.add("gap", None, list(rules),
                     "no rule fires for the example input, but the ruleset is declared "
                     "complete (complete: true)", found)


def analyse_ruleset(book: Rulebook, ruleset_id: str, max_nodes: int = DEFAULT_MAX_NODES,
                    abstraction: Abstraction | None = None) -> RulesetAnalysis:
    """Analyse one ruleset's decision (see the module docstring)."""
    a = abstraction or Abstraction(book)
    return _Analyser(a, book.ruleset(ruleset_id), max_nodes).run()


def analyse_rulebook(book: Rulebook, max_nodes: int = DEFAULT_MAX_NODES
                     ) -> tuple[RulesetAnalysis, ...]:
    """Analyse every ruleset of a rulebook, in manifest order."""
    a = Abstraction(book)
    return tuple(_Analyser(a, rs, max_nodes).run() for rs in book.rulesets)
