"""The durable_rules engine: the same rulebook compiled to durable_rules (Rete) rulesets.

:func:`assess` gives an :class:`~int_rules.assessment.Assessment` equal to the reference
engine's (``Assessment.comparable()``), with ``engine == "durable"``. It exists for users who
want durable_rules' Rete model and as a second, independent implementation the reference is
checked against (``tests/test_durable*.py``). How it works, for one record as of one date:

1. **Pathway.** The caseload pathway (``rulesets/pathway.yaml``) is compiled once to a
   durable_rules *statechart*: one chart state per pathway state, one trigger per (state,
   step) whose action records the transition it took (and any finding). The record's pathway
   codes are posted to it as *events*, one at a time in replay order (date, then the declared
   same-day precedence, then code; death at its date), so the engine matches every state
   transition. Same-day conflicts (``same_day`` in the pathway) are a separate ruleset whose
   rules *join* two facts of the same date. The state, history and findings are assembled
   from what the actions recorded.
2. **Facts** are computed by the generated engine's function
   (:func:`int_rules.engines.generated.evaluate`, without its rules), fed the statechart's
   pathway result and its own ``may_record`` decisions (``as_of``'s events walked through the
   pathway table's cells with and without the code, from the state the statechart had
   reached when that day began): the reference pathway is never replayed for this engine, and
   comparing it with the reference also checks the generated facts against the closures.
3. **Rules.** Every YAML rule is compiled to a durable_rules rule over one *fact* per record
   that carries the fact values its rules read: dates as whole days from ``as_of``, facts with
   no value as absent fields, ordered categories also as their rank on the scale. Conditions
   compile to durable_rules' JSON operators with the reference's two-valued logic (a test of a
   missing field is false; ``not`` is pushed down to the leaves by De Morgan and each negated
   leaf becomes "absent, or present and failing").
   Each rule's action records its rule id; because the record is a fact, every matching rule
   fires. Each ruleset's hit policy is then applied to the fired set in declared order
   (``collect``: all; ``first``: the first; ``unique``: an error if more than one;
   ``priority``: the highest ``priority``, the first declared on a tie), as in
   :func:`int_rules.engines.reference.fire_rules`.

durable_rules' sharp edges (measured on durable-rules 2.0.28, see ``docs/engines.md``) and what
this module does about each:

* ``engine.Host`` starts two background timer threads: a private host subclass with
  ``_run`` overridden does nothing in the background; every call here is synchronous.
* The process-global ``durable.lang`` registry never frees a ruleset and cannot re-register a
  name: it is not used. Each rulebook gets its own host, built once and cached by identity
  (the C rulesets are freed when the rulebook is garbage collected).
* A ruleset holds at most 1,024 live sessions: one fresh session id per call, deleted in
  ``finally``.
* Deleting a session in which no action ever ran crashes the process (the C session's action
  context is never initialised): every compiled ruleset has an anchor rule that matches the
  record's fact alone, so an action always runs before the session is deleted. (The
  statechart's own start action serves the same purpose.)
* A message that no rule matches raises ``MessageNotHandledException``: the anchor makes
  every fact handled, so that exception here means an engine fault and is reported as one.
* The alpha network is walked with a fixed stack of 64 entries, so a fact that satisfies
  "too many" conditions at once fails with error 303. The compiler models durable_rules'
  alpha network, bounds that stack for the worst case (every test true, except tests that
  cannot hold together) and packs the rules into as many durable rulesets as needed; a
  single rule that alone could overflow it is a :class:`~int_rules.errors.RulesetError`
  naming the rule.
* A pattern may hold at most 15 ``$and``/``$or`` operators (error 113 when the ruleset is
  created): negations are written flat, and a rule that still has more is split into several
  patterns whose union is its condition, all recording the same rule id.
* There is no date type: dates are integer day offsets from ``as_of``.
* ``$neq`` does not match a missing field, and comparing with a missing field of the same
  message is *true*: "not equal" compiles to present-and-different explicitly, and every
  fact-to-fact comparison requires both fields present.
* A rule with only ``$nex``/``$neq`` tests can match the session state object and loop:
  every rule starts with a positive discriminator (``KIND``) the state object never has.
* durable_rules' Python host decodes every action's matched message (for a rule, the whole
  record fact) and the session state from JSON, writes the state back and reads the clock
  twice, per action: most of this engine's time. The host here drives the C engine the same
  way (``start_action_for_state``, then ``complete_and_start_action`` until no action is
  left) with less around it: a rule's action is found from the message's first key and the
  message is decoded only if the action reads it; the state is written back only when an
  action changed it (a rule's action never does; the chart's first transition marks it
  running); the statechart's actions run durable_rules' own promise chains (its
  transitions) with a closure that holds no action lease and no self-referring timer.
* Exceptions raised in actions are swallowed into the session state: actions catch them and
  they are re-raised after the engine call returns.
* Facts fire every matching rule, events only the first: records are asserted as facts;
  pathway codes are posted as events (exactly one trigger matches each).
* A rule fires once for each way its ``$or`` branches hold: actions record rule ids in a set.
* Threads sharing a host can crash the process: each compiled rulebook has a lock around
  every engine call (the engine holds the GIL anyway, so this costs no parallelism).
* Its JSON parser rejects numbers with an exponent but no decimal point (``1e-05``) and
  cannot read NaN: numbers are written with a decimal point, infinities as ``1.0e+999``, and
  a NaN value is a :class:`~int_rules.errors.RecordError`. Property names are matched by a
  32-bit FNV-1a hash: a collision between two fact names is reported at compile time.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import json
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..assessment import Assessment, HitPolicyError
from ..errors import EngineUnavailableError, IntRulesError, Location, RecordError, RulesetError
from ..model import nodes as n
from ..model.nodes import ValueType as FactType
from ..model.semantics import UniqueOverlap, pathway_order, select_hits
from ..pathway import PathwayFinding, PathwayResult, PathwayTransition
from .generated import evaluate as evaluate_facts

if TYPE_CHECKING:
    from ..record import PatientRecord
    from ..rulebook import CompiledRule, Rulebook

__all__ = [
    "INSTALL_HINT",
    "STACK_LIMIT",
    "DurableEngineError",
    "assess",
    "definitions",
]

INSTALL_HINT = "pip install 'int_rules[durable]'"

#: durable_rules walks its alpha network with a stack of this many entries (MAX_STACK_SIZE).
STACK_LIMIT = 64
#: The most facts one message carries: with rank fields at most twice as many properties,
#: well under 255 (durable_rules sorts a message's properties with byte-sized counters).
MAX_FIELDS = 100
#: durable_rules allows at most this many $and/$or operators in one pattern (error 113 above).
MAX_COMPOSITES = 15
#: The most durable_rules patterns one YAML rule may be split into (see _split).
MAX_VARIANTS = 256

_KIND = "KIND"  # the discriminator key: upper case, so no fact key (f_<identifier>) can clash
_FACTS = "facts"
_STEP = "pathway_step"
_BEGIN = "pathway_begin"
_DAY = "pathway_day"
_ENTRY = "BEGIN"  # the statechart's entry state (pathway state ids are lower case)
_ANCHOR = "ANCHOR"  # rule ids are like IDN-010, so this cannot clash with a YAML rule


class DurableEngineError(IntRulesError):
    """durable_rules failed, or disagreed with what the compiled rulebook requires."""


# -- loading durable_rules --------------------------------------------------------------------


def _import_durable() -> tuple[Any, Any]:
    """durable_rules' ``engine`` module and its C extension, or EngineUnavailableError."""
    try:
        import durable_rules_engine  # type: ignore[import-not-found]
        from durable import engine
    except ImportError as exc:
        raise EngineUnavailableError(
            "the durable engine needs the optional durable-rules package, which is not "
            f"installed or cannot be imported here ({exc}); install it with: {INSTALL_HINT} "
            "(it builds from source with a C compiler and supports Python < 3.13)"
        ) from exc
    return engine, durable_rules_engine


# -- JSON as durable_rules reads it -----------------------------------------------------------


def _number(value: float | int) -> str:
    """A number as durable_rules' JSON parser reads it exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise DurableEngineError(f"durable_rules cannot hold the whole number {value}")
        return str(value)
    if math.isnan(value):
        raise ValueError("NaN")
    if math.isinf(value):
        return "1.0e+999" if value > 0 else "-1.0e+999"
    text = repr(value)
    if "e" in text and "." not in text:  # its parser needs a decimal point before an exponent
        text = text.replace("e", ".0e", 1)
    return text


def _dumps(obj: Any) -> str:
    """JSON text for durable_rules (see :func:`_number`); ASCII, so any str is safe."""
    if isinstance(obj, str):
        return json.dumps(obj)
    if isinstance(obj, (bool, int, float)):
        return _number(obj)
    if isinstance(obj, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_dumps(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_dumps(v) for v in obj) + "]"
    if obj is None:
        return "null"
    raise TypeError(f"cannot write {type(obj).__name__} for durable_rules")


def _fnv1a(name: str) -> int:
    """durable_rules' property-name hash (32-bit FNV-1a)."""
    h = 2166136261
    for byte in name.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def _fact_key(name: str) -> str:
    return f"f_{name}"


# -- conditions -> durable_rules JSON operators ------------------------------------------------


class _Const:
    """A condition that compiled to a constant (e.g. ``at_least`` the top of a scale)."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"_Const({self.value})"


_TRUE = _Const(True)
_FALSE = _Const(False)
Expr = dict[str, Any] | _Const

_INVERSE = {"$lt": "$gte", "$lte": "$gt", "$gt": "$lte", "$gte": "$lt", "$eq": "$neq",
            "$neq": "$eq"}
_ORDER_JSON = {"at_least": "$gte", "at_most": "$lte", "greater_than": "$gt",
               "less_than": "$lt", "after": "$gt", "before": "$lt"}
_ORDER_OPS = frozenset({"at_least", "at_most", "greater_than", "less_than"})


def _all(parts: Iterable[Expr]) -> Expr:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, _Const):
            if not p.value:
                return _FALSE
            continue
        out.extend(p["$and"] if set(p) == {"$and"} else [p])
    if not out:
        return _TRUE
    return out[0] if len(out) == 1 else {"$and": out}


def _any(parts: Iterable[Expr]) -> Expr:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, _Const):
            if p.value:
                return _TRUE
            continue
        out.extend(p["$or"] if set(p) == {"$or"} else [p])
    if not out:
        return _FALSE
    return out[0] if len(out) == 1 else {"$or": out}


def _cmp(op: str, key: str, value: Any) -> dict[str, Any]:
    return {key: value} if op == "$eq" else {op: {key: value}}


def _unique(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(v == w and type(v) is type(w) for w in out):
            out.append(v)
    return out


class _ConditionCompiler:
    """Compiles ``when`` trees to durable_rules expressions with the reference's semantics.

    ``not`` is pushed down to the leaves (De Morgan). A plain leaf holds only when its fact is
    present; a negated leaf is ``$or`` of "absent" and the tests that hold when the fact is
    present and the leaf fails, written flat where possible because durable_rules allows
    only :data:`MAX_COMPOSITES` ``$and``/``$or`` operators in a pattern. Ordered categories
    are compared by their rank on the scale, sent as a second field (``r_<fact>``).
    """

    def __init__(self, types: Mapping[str, FactType]) -> None:
        self.types = types

    def compile(self, cond: n.Condition, negate: bool = False) -> Expr:
        if isinstance(cond, n.All):
            parts = [self.compile(c, negate) for c in cond.parts]
            return _any(parts) if negate else _all(parts)
        if isinstance(cond, n.AnyOf):
            parts = [self.compile(c, negate) for c in cond.parts]
            return _all(parts) if negate else _any(parts)
        if isinstance(cond, n.Not):
            return self.compile(cond.part, not negate)
        if isinstance(cond, n.OutputIs):
            raise TypeError("rules and facts cannot test a decision's output")
        return self._leaf(cond, negate)

    def _leaf(self, leaf: n.Present | n.Compare | n.InSet | n.DaysAgo | n.CompareFacts,
              negate: bool) -> Expr:
        name = leaf.fact
        ftype = self.types[name]
        k = _fact_key(name)
        ex: Expr = {"$ex": {k: 1}}
        nex: Expr = {"$nex": {k: 1}}

        def test(pos: Expr, failing: Sequence[Expr]) -> Expr:
            """``pos``; or, negated, absent or one of ``failing`` (present and failing)."""
            return _any([nex, *failing]) if negate else pos

        if isinstance(leaf, n.Present):
            return ex if leaf.present != negate else nex
        if isinstance(leaf, n.CompareFacts):
            return self._against_fact(name, ftype, leaf.op, leaf.other, negate)
        if isinstance(leaf, n.DaysAgo):
            days = leaf.days
            if leaf.op == "within_days":  # as_of - n <= date <= as_of, i.e. -n <= offset <= 0
                return test(_all([{"$gte": {k: -days}}, {"$lte": {k: 0}}]),
                            [{"$lt": {k: -days}}, {"$gt": {k: 0}}])
            return test({"$lt": {k: -days}}, [{"$gte": {k: -days}}])  # as_of - date > n
        if isinstance(leaf, n.InSet) or leaf.op == "equals":
            values = _unique(leaf.values) if isinstance(leaf, n.InSet) else [leaf.value]
            domain = _domain(ftype)
            if domain is not None:  # the other values of a closed domain, flat
                others = [v for v in domain if v not in values]
                return test(_any({k: v} for v in values), [{k: v} for v in others])
            return test(_any({k: v} for v in values),
                        [_all({"$neq": {k: v}} for v in values)])
        value: Any = leaf.value
        if leaf.op == "not_equals":  # present and different, explicitly
            return test(_all([ex, {"$neq": {k: value}}]), [{k: value}])
        # at_least / at_most / greater_than / less_than
        jop = _ORDER_JSON[leaf.op]
        if ftype.kind == "category":
            assert ftype.scale is not None
            k, value = _rank_key(name), ftype.scale.index(str(value))
            nex = {"$nex": {k: 1}}
        return test({jop: {k: value}}, [{_INVERSE[jop]: {k: value}}])

    def _against_fact(self, name: str, ftype: FactType, op: str, other: str,
                      negate: bool) -> Expr:
        ranked = op in _ORDER_OPS and ftype.kind == "category"
        a, b = (_rank_key(name), _rank_key(other)) if ranked else (_fact_key(name),
                                                                  _fact_key(other))
        jop = {"equals": "$eq", "not_equals": "$neq"}.get(op) or _ORDER_JSON[op]
        ref = {"$m": b}
        if negate:  # either absent, or both present and the comparison fails
            return _any([{"$nex": {a: 1}}, {"$nex": {b: 1}}, _cmp(_INVERSE[jop], a, ref)])
        # durable_rules finds a comparison with an absent field of the same message *true*.
        return _all([{"$ex": {a: 1}}, {"$ex": {b: 1}}, _cmp(jop, a, ref)])


def _domain(ftype: FactType) -> tuple[Any, ...] | None:
    """Every value a fact of this type can take, when that is a closed set."""
    if ftype.kind == "bool":
        return (True, False)
    if ftype.kind == "category" and ftype.values:
        return ftype.values
    return None


def _rank_key(name: str) -> str:
    return f"r_{name}"


def _finish(expr: Expr, kind: str) -> dict[str, Any]:
    """A rule's pattern: the positive discriminator first, then the condition."""
    disc = {_KIND: kind}
    if isinstance(expr, _Const):
        return disc if expr.value else {"$and": [disc, {"$nex": {_KIND: 1}}]}
    result = _all([disc, expr])
    assert isinstance(result, dict)
    return result


def _composites(expr: Any) -> int:
    """How many ``$and``/``$or`` operators a pattern has (durable_rules allows 15)."""
    if isinstance(expr, Mapping):
        own = 1 if set(expr) <= {"$and", "$or"} else 0
        return own + sum(_composites(v) for v in expr.values())
    if isinstance(expr, list):
        return sum(_composites(v) for v in expr)
    return 0


def _split(pattern: dict[str, Any]) -> list[dict[str, Any]]:
    """One or more patterns whose union is ``pattern``, each with at most
    :data:`MAX_COMPOSITES` ``$and``/``$or`` operators: the biggest ``$or`` directly under the
    top ``$and`` is distributed over it, one pattern per branch, until each fits. Stops (with
    more than :data:`MAX_VARIANTS` patterns) as soon as that many are needed."""
    out: list[dict[str, Any]] = []
    todo = [pattern]
    while todo:
        current = todo.pop()
        if _composites(current) <= MAX_COMPOSITES:
            out.append(current)
            continue
        if len(out) + len(todo) > MAX_VARIANTS:
            return [*out, *todo, current]
        items = current["$and"]
        at = max((i for i, item in enumerate(items) if set(item) == {"$or"}),
                 key=lambda i: _composites(items[i]))
        for branch in reversed(items[at]["$or"]):
            variant = _all([*items[:at], branch, *items[at + 1:]])
            assert isinstance(variant, dict)
            todo.append(variant)
    return out


def _variant_names(rule_id: str, count: int) -> list[str]:
    return [rule_id] if count == 1 else [f"{rule_id}#{k}" for k in range(1, count + 1)]


def _bin_rules(members: Sequence[tuple[n.Rule, list[dict[str, Any]]]],
               anchor: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The durable_rules rule definitions of some YAML rules (without actions)."""
    rules: dict[str, dict[str, Any]] = {}
    for rule, variants in members:
        for key, pattern in zip(_variant_names(rule.id, len(variants)), variants, strict=True):
            rules[key] = {"all": [{"m": pattern}]}
    rules[_ANCHOR] = {"all": [{"m": anchor}]}
    return rules


def _fits(members: Sequence[tuple[n.Rule, list[dict[str, Any]]]],
          anchor: dict[str, Any]) -> bool:
    """Whether these rules can share one durable ruleset (stack and field limits)."""
    if len({f for rule, _ in members for f in _reads(rule)}) > MAX_FIELDS:
        return False
    return _stack_bound(_bin_rules(members, anchor)) <= STACK_LIMIT


# -- a model of durable_rules' alpha network, to bound its stack --------------------------------

_TEST_OPS = frozenset({"$ex", "$nex", "$neq", "$lt", "$lte", "$gt", "$gte"})
_Test = tuple[str, str, str]  # property, operator, value as JSON text


class _AlphaModel:
    """The alpha network durable_rules builds from a ruleset's patterns (rete.c createAlpha).

    ``$and`` chains tests, sharing a test node with an identical sibling; ``$or`` builds each
    branch under the same parent and joins them in a new *forward* node, which is pushed once
    for every branch that holds. A message is matched by a depth-first walk with a stack of
    :data:`STACK_LIMIT` entries; a node pushes every child that holds. :meth:`stack_bound`
    is the highest that stack can get for any message, assuming every test can hold except:
    ``$nex`` excludes every other test of the same property, and equality tests of one
    property with different values exclude each other.
    """

    def __init__(self) -> None:
        self.tests: list[_Test | None] = [None]  # node 0 is the root; None marks forward nodes
        self.children: list[dict[_Test, int]] = [{}]
        self.forwards: list[list[int]] = [[]]

    def _new(self, test: _Test | None) -> int:
        self.tests.append(test)
        self.children.append({})
        self.forwards.append([])
        return len(self.tests) - 1

    def add(self, expr: Mapping[str, Any], parent: int = 0) -> int:
        """Add one pattern below ``parent``; return the node it ends in."""
        ((key, sub),) = expr.items()
        if key == "$and":
            node = parent
            for part in sub:
                node = self.add(part, node)
            return node
        if key == "$or":
            forward = self._new(None)
            for part in sub:
                self.forwards[self.add(part, parent)].append(forward)
            return forward
        if key in _TEST_OPS:
            ((prop, value),) = sub.items()
            test: _Test = (prop, key, _dumps(value))
        else:
            test = (key, "$eq", _dumps(sub))
        found = self.children[parent].get(test)
        if found is not None:
            return found
        node = self._new(test)
        self.children[parent][test] = node
        return node

    def _width(self, node: int) -> int:
        """How many children of ``node`` can hold for one message."""
        by_prop: dict[str, list[_Test]] = {}
        for test in self.children[node]:
            by_prop.setdefault(test[0], []).append(test)
        width = len(self.forwards[node])
        for tests in by_prop.values():
            has_nex = any(t[1] == "$nex" for t in tests)
            literals = [json.loads(t[2]) for t in tests
                        if t[1] == "$eq" and not t[2].startswith("{")]
            others = sum(1 for t in tests if t[1] != "$nex") - len(literals)
            same = max((sum(1 for w in literals if w == v) for v in literals), default=0)
            width += max(int(has_nex), others + same)
        return width

    def stack_bound(self) -> int:
        memo: dict[int, int] = {}

        def height(node: int) -> int:
            if node in memo:
                return memo[node]
            kids = [*self.children[node].values(), *self.forwards[node]]
            if not kids:
                memo[node] = 0
                return 0
            width = self._width(node)
            result = max(width, width - 1 + max(height(k) for k in kids))
            memo[node] = result
            return result

        return max(1, height(0))


def _patterns(rules: Mapping[str, Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for rule in rules.values():
        for pattern in rule.get("all", ()):
            yield from pattern.values()


def _stack_bound(rules: Mapping[str, Mapping[str, Any]]) -> int:
    model = _AlphaModel()
    for expr in _patterns(rules):
        model.add(expr)
    return model.stack_bound()


def _check_hashes(keys: Mapping[str, str], where: Location | None) -> None:
    """Error if two message properties (``keys``: property name -> what it is) share a hash."""
    seen: dict[int, str] = {}
    for key in keys:
        other = seen.setdefault(_fnv1a(key), key)
        if other != key:
            raise RulesetError(where, f"durable_rules cannot tell {keys[other]} from "
                                      f"{keys[key]}: their property names {other!r} and {key!r} "
                                      "have the same 32-bit FNV-1a hash, which is how it matches "
                                      "them; rename one to use the durable engine")


# -- the compiled rulebook --------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """One durable ruleset of compiled YAML rules, and the record fact it is sent."""

    name: str
    rule_ids: tuple[str, ...]
    #: (fact, '"key":', value kind, rank of each category for a "rank" field)
    fields: tuple[tuple[str, str, str, Mapping[str, int] | None], ...]


@dataclass(frozen=True)
class _Cell:
    """The effect of one pathway step in one state, from the pathway's transitions."""

    from_state: str
    step: str
    to_state: str
    finding: Any  # the pathway's FindingDef, or None


@dataclass
class _Run:
    """What the actions of one engine call recorded."""

    sid: str
    fired: set[str] = field(default_factory=set)
    moves: list[tuple[int, _Cell]] = field(default_factory=list)
    same_day: set[tuple[int, int]] = field(default_factory=set)
    opened: set[str] = field(default_factory=set)  # rulesets where an action has run
    errors: list[BaseException] = field(default_factory=list)


class _CompiledBook:
    """A rulebook compiled to durable_rules rulesets on one private, synchronous host.

    Holds no reference to the Rulebook, so caching it by the book's identity does not keep
    the book alive. All engine calls go through :attr:`_lock`.
    """

    def __init__(self, book: Rulebook) -> None:
        engine, dre = _import_durable()
        self._engine = engine
        self._dre = dre
        self._lock = threading.Lock()
        self._sids = itertools.count(1)
        self._run: _Run | None = None
        #: ``_allowed`` for a record with no event on ``as_of``: it depends on the state alone
        #: (a memo of a pure function, bounded by the number of pathway states).
        self._allowed_from: dict[tuple[str, frozenset[str]], frozenset[str]] = {}
        self.definitions: dict[str, Any] = {}
        host_cls, rules_cls, chart_cls = _classes(engine, dre)
        self._host = host_cls()
        self._rules_cls = rules_cls
        self._chart_cls = chart_cls
        self._handles: list[Any] = []
        model = book.model
        self._parts = self._compile_rules(model, f"{book.directory.name}/{book.manifest.facts}")
        self._decisions = model.decisions
        #: The rulebook's rules by id, for the Assessment (which names them).
        self._rules = {rule.id: rule for rs in book.rulesets for rule in rs.rules}
        self._compile_pathway(model.pathway, book.pathway.source)
        weakref.finalize(self, _free_rulesets, dre, self._handles)

    # -- compile ------------------------------------------------------------------------------

    def _register(self, name: str, rules: dict[str, dict[str, Any]]) -> None:
        self.definitions[name] = {r: {k: v for k, v in d.items() if k != "run"}
                                  for r, d in rules.items()}
        try:
            ruleset = self._rules_cls(name, self._host, rules)
        except self._dre.error as exc:
            raise DurableEngineError(f"durable_rules rejected ruleset {name!r}: {exc}") from exc
        self._host.add_ruleset(name, ruleset)
        self._handles.append(ruleset._handle)

    def _compile_rules(self, model: n.RuleModel, facts_shown: str) -> tuple[_Part, ...]:
        types = model.fact_types
        compiler = _ConditionCompiler(types)
        order = {f.name: i for i, f in enumerate(model.facts)}
        anchor = {_KIND: _FACTS}
        facts_file = Location(facts_shown)
        bins: list[list[tuple[n.Rule, list[dict[str, Any]]]]] = []
        for decision in model.decisions:
            for rule in decision.rules:
                expr = compiler.compile(rule.condition)
                variants = _split(_finish(expr, _FACTS))
                member = (rule, variants)
                label = f"rule {rule.id}"
                if len(variants) > MAX_VARIANTS:
                    raise RulesetError(
                        rule.location, f"this condition needs {len(variants)} durable_rules "
                        f"patterns (at most {MAX_VARIANTS}): too many nested any/not; split it "
                        "into several rules to use the durable engine", label)
                alone = _stack_bound(_bin_rules([member], anchor))
                if alone > STACK_LIMIT:
                    raise RulesetError(
                        rule.location, f"durable_rules could need {alone} entries of its "
                        f"{STACK_LIMIT}-entry match stack for this rule (too many tests that can "
                        "hold at once, e.g. a long 'any' of ranges); split it into several rules "
                        "to use the durable engine", label)
                if len(_reads(rule)) > MAX_FIELDS:
                    raise RulesetError(rule.location, f"reads more than {MAX_FIELDS} facts, "
                                                      "more than one durable_rules message "
                                                      "carries", label)
                if bins and _fits([*bins[-1], member], anchor):
                    bins[-1].append(member)
                else:
                    bins.append([member])

        parts: list[_Part] = []
        for number, members in enumerate(bins, start=1):
            name = "rules" if number == 1 else f"rules_{number}"
            facts = sorted({f for rule, _ in members for f in _reads(rule)}, key=order.__getitem__)
            keys = {k: "a reserved property" for k in (_KIND, "sid", "id", "$s")}
            keys.update({_fact_key(f): f"fact {f!r}" for f in facts})
            keys.update({_rank_key(f): f"the rank of fact {f!r}" for f in facts})
            _check_hashes(keys, facts_file)
            rules = _bin_rules(members, anchor)
            for rule, variants in members:
                for key in _variant_names(rule.id, len(variants)):
                    rules[key]["run"] = self._action(_fire(rule.id))
            rules[_ANCHOR]["run"] = self._action(_nothing)
            self._register(name, rules)
            fields: list[tuple[str, str, str, Mapping[str, int] | None]] = []
            for f in facts:
                fields.append((f, f"{json.dumps(_fact_key(f))}:", types[f].kind, None))
                scale = types[f].scale
                if types[f].kind == "category" and scale:
                    ranks = {c: i for i, c in enumerate(scale)}
                    fields.append((f, f"{json.dumps(_rank_key(f))}:", "rank", ranks))
            parts.append(_Part(name, tuple(r.id for r, _ in members), tuple(fields)))
        return tuple(parts)

    def _compile_pathway(self, table: n.PathwayTable, source: str) -> None:
        where = Location(source)
        self._initial = table.initial
        self._step_ids = tuple(s.id for s in table.steps)
        self._precedence = {s.id: s.precedence for s in table.steps}
        self._by_code = {code: (s.precedence, i) for i, s in enumerate(table.steps)
                         for code in s.codes or ()}
        death = table.death_step
        self._death = (death.precedence, self._step_ids.index(death.id))

        # The statechart: one state per pathway state, one trigger per step.
        chart: dict[str, dict[str, Any]] = {
            _ENTRY: {"begin": {"all": [{"m": {_KIND: _BEGIN}}], "to": table.initial}},
        }
        #: (state, step) -> the cell: what the step does there (for may_record decisions).
        self._cells: dict[tuple[str, str], _Cell] = {}
        for pc in table.cells:
            cell = _Cell(pc.state, pc.step, pc.to_state, pc.finding)
            self._cells[(pc.state, pc.step)] = cell
            chart.setdefault(pc.state, {})[pc.step] = {
                "all": [{"m": {"$and": [{_KIND: _STEP}, {"step": pc.step}]}}],
                "to": cell.to_state,
                "run": self._action(_took(cell)),
            }
        self.definitions["pathway$state"] = {
            s: {trig: {k: v for k, v in spec.items() if k != "run"} for trig, spec in tr.items()}
            for s, tr in chart.items()
        }
        try:
            ruleset, rules = self._chart_cls.build("pathway", self._host, chart)
        except self._dre.error as exc:
            raise DurableEngineError(f"durable_rules rejected the pathway statechart: {exc}") \
                from exc
        bound = _stack_bound(rules)
        if bound > STACK_LIMIT:
            raise RulesetError(where, f"the pathway statechart could need {bound} entries of "
                                      f"durable_rules' {STACK_LIMIT}-entry match stack")
        self._host.add_ruleset("pathway", ruleset)
        self._handles.append(ruleset._handle)

        # Same-day conflicts: a rule per declaration joining the earlier step's fact with the
        # later step's fact of the same date (the later step is the one with higher precedence).
        self._same_day: list[tuple[str, str, Any]] = []  # (earlier, later, finding)
        rules_sd: dict[str, dict[str, Any]] = {}
        for k, sd in enumerate(table.same_day):
            a, b = sd.steps
            early, late = sorted((a, b), key=self._precedence.__getitem__)
            self._same_day.append((early, late, sd.finding))
            rules_sd[sd.id] = {
                "all": [
                    {"x": {"$and": [{_KIND: _DAY}, {"step": early}]}},
                    {"y": {"$and": [{_KIND: _DAY}, {"step": late}, {"day": {"x": "day"}}]}},
                ],
                "run": self._action(_conflict(k)),
            }
        self._same_day_steps = frozenset(s for e, la, _ in self._same_day for s in (e, la))
        if rules_sd:
            rules_sd[_ANCHOR] = {"all": [{"m": {_KIND: _DAY}}], "run": self._action(_nothing)}
            bound = _stack_bound(rules_sd)
            if bound > STACK_LIMIT:
                raise RulesetError(where, f"the pathway's same_day checks could need {bound} "
                                          f"entries of durable_rules' {STACK_LIMIT}-entry stack")
            self._register("pathway_same_day", rules_sd)

    def _action(self, record: Callable[[_Run, Any], None]) -> Callable[[Any], None]:
        """An action that records into the current run; exceptions are kept, not swallowed."""

        def action(c: Any) -> None:
            run = self._run
            try:
                if run is None or c.s["sid"] != run.sid:
                    raise DurableEngineError("an action fired outside its engine call")
                record(run, c)
            except BaseException as exc:  # durable_rules would swallow it into the state
                if run is not None:
                    run.errors.append(exc)
                raise

        return action

    # -- run ----------------------------------------------------------------------------------

    def assess(self, book: Rulebook, record: PatientRecord, as_of: dt.date) -> Assessment:
        ordered = self._pathway_events(record, as_of)
        with self._lock:
            pathway = self._replay(record.patient_id, ordered, as_of)
            allowed = self._allowed(ordered, as_of, pathway, book.may_record_codes)
            values, evidence, _, _ = evaluate_facts(book, record, as_of, fire=False,
                                                    replayed=(pathway, allowed))
            fired = self._fire(record, values, as_of)
        chosen: list[CompiledRule] = []
        for decision in self._decisions:
            hits = [rule for rule in decision.rules if rule.id in fired]
            try:
                chosen += [self._rules[r.id] for r in select_hits(decision.hit_policy, hits,
                                                                  _priority)]
            except UniqueOverlap as overlap:
                raise HitPolicyError(record.patient_id, decision.id,
                                     tuple(r.id for r in overlap.hits)) from None
        return Assessment(
            book=book,
            record=record,
            as_of=as_of,
            engine="durable",
            values=values,
            evidence=evidence,
            fired=tuple(chosen),
            pathway=pathway,
        )

    def _pathway_events(self, record: PatientRecord,
                        as_of: dt.date) -> list[tuple[dt.date, int, str, str]]:
        """The record's pathway codes in replay order: (date, precedence, code, step)."""
        steps = self._step_ids
        return [(day, prec, code, steps[i]) for day, prec, code, i in pathway_order(
            ((ev.date, ev.code) for ev in record.events), self._by_code, self._death, as_of,
            record.date_of_death)]

    def _allowed(self, ordered: list[tuple[dt.date, int, str, str]], as_of: dt.date,
                 before: PathwayResult, codes: frozenset[str]) -> frozenset[str]:
        """Which of ``codes`` may be recorded on ``as_of``: recording it would add no finding.

        Decided from the statechart's replay (``before``) and the pathway table's cells: the
        state the person was in when ``as_of`` began, then that day's events walked through
        the cells with and without the code (in replay order), comparing their findings.
        Earlier days cannot change, so only ``as_of`` is walked.
        """
        day = [e for e in ordered if e[0] == as_of]
        if not day:  # nothing recorded on as_of: the answer depends on the state alone
            key = (before.state, codes)
            found = self._allowed_from.get(key)
            if found is None:
                found = self._allowed_from[key] = self._allowed_on(before.state, day, as_of,
                                                                    codes)
            return found
        start = next((t.from_state for t in before.history if t.date == as_of), before.state)
        return self._allowed_on(start, day, as_of, codes)

    def _allowed_on(self, start: str, day: list[tuple[dt.date, int, str, str]],
                    as_of: dt.date, codes: frozenset[str]) -> frozenset[str]:
        """Which of ``codes`` may be recorded on ``as_of`` after ``day`` (that day's events,
        in replay order) from ``start``, the state when the day began."""
        base = self._day_findings(start, day)
        out = []
        for code in codes:
            info = self._by_code.get(code)
            if info is None:
                continue
            prec, index = info
            new = (as_of, prec, code, self._step_ids[index])
            if not self._day_findings(start, sorted([*day, new])) - base:
                out.append(code)
        return frozenset(out)

    def _day_findings(self, state: str, events: Sequence[tuple[dt.date, int, str, str]]
                      ) -> collections.Counter[tuple[str, str | None, str]]:
        """The findings (id, code, state before) of one day's events from ``state``."""
        found: collections.Counter[tuple[str, str | None, str]] = collections.Counter()
        seen: set[str] = set()
        for _, _, code, step in events:
            for early, late, finding in self._same_day:
                if step in (early, late) and ({early, late} - {step}) & seen:
                    found[(finding.id, code or None, state)] += 1
            seen.add(step)
            cell = self._cells[(state, step)]
            if cell.finding is not None:
                found[(cell.finding.id, code or None, state)] += 1
            state = cell.to_state
        return found

    def _session(self) -> _Run:
        run = _Run(str(next(self._sids)))
        self._run = run
        return run

    def _call(self, run: _Run, patient_id: str, ruleset: str, method: str, text: str) -> None:
        """One engine call, with the actions' exceptions re-raised after it returns."""
        try:
            getattr(self._host, method)(ruleset, text)
        except self._engine.MessageNotHandledException as exc:
            raise DurableEngineError(f"patient {patient_id!r}: durable ruleset {ruleset!r} "
                                     "did not handle a message") from exc
        except self._dre.error as exc:
            if run.errors:
                raise run.errors[0] from exc
            raise DurableEngineError(f"patient {patient_id!r}: durable_rules failed in ruleset "
                                     f"{ruleset!r}: {exc}") from exc
        run.opened.add(ruleset)  # every handled message runs an action (anchor or chart)
        if run.errors:
            raise run.errors[0]

    def _close(self, run: _Run, ruleset: str, method: str, opener: str) -> None:
        """Delete this call's session of ``ruleset``.

        durable_rules crashes the process when deleting a session in which no action ever
        ran, which is the case when the session's first message failed. Such a session is
        first sent ``opener`` (a message only the anchor or the chart's start matches); if
        even that fails, the session is left rather than risk the crash.
        """
        if ruleset not in run.opened:
            try:
                getattr(self._host, method)(ruleset, opener)
            except Exception:
                return
        with contextlib.suppress(self._dre.error):
            self._host.delete_state(ruleset, run.sid)

    def _replay(self, patient_id: str, ordered: list[tuple[dt.date, int, str, str]],
                as_of: dt.date) -> PathwayResult:
        if not ordered:
            return PathwayResult(self._initial, None, (), ())
        run = self._session()
        sid = run.sid
        begin = f'{{"sid":"{sid}","{_KIND}":"{_BEGIN}"}}'
        try:
            self._call(run, patient_id, "pathway", "post_text", begin)
            for i, (_, _, _, step) in enumerate(ordered):
                self._call(run, patient_id, "pathway", "post_text",
                           f'{{"sid":"{sid}","{_KIND}":"{_STEP}","i":{i},"step":"{step}"}}')
            days: dict[dt.date, set[str]] = {}
            for day, _, _, step in ordered:
                if step in self._same_day_steps:
                    days.setdefault(day, set()).add(step)
            facts = [f'{{"sid":"{sid}","{_KIND}":"{_DAY}","day":{(day - as_of).days},'
                     f'"step":"{step}"}}'
                     for day, steps in days.items() if len(steps) > 1 for step in sorted(steps)]
            if facts:
                try:
                    self._call(run, patient_id, "pathway_same_day", "assert_texts",
                               "[" + ",".join(facts) + "]")
                finally:
                    self._close(run, "pathway_same_day", "assert_text",
                                f'{{"sid":"{sid}","{_KIND}":"{_DAY}"}}')
        finally:
            self._close(run, "pathway", "post_text", begin)
            self._run = None

        if [i for i, _ in run.moves] != list(range(len(ordered))):
            raise DurableEngineError(f"patient {patient_id!r}: the pathway statechart took "
                                     f"events {[i for i, _ in run.moves]} of "
                                     f"{len(ordered)}")
        state = self._initial
        entered: dt.date | None = None
        history: list[PathwayTransition] = []
        found: list[PathwayFinding] = []
        for (day, _, code, step), (_, cell) in zip(ordered, run.moves, strict=True):
            if cell.from_state != state or cell.step != step:
                raise DurableEngineError(f"patient {patient_id!r}: the statechart matched step "
                                         f"{cell.step!r} in {cell.from_state!r} for step "
                                         f"{step!r} in {state!r}")
            offset = (day - as_of).days
            for k, (_, late, fdef) in enumerate(self._same_day):
                if late == step and (offset, k) in run.same_day:
                    found.append(PathwayFinding(fdef.id, fdef.severity, day, code or None,
                                                state, fdef.message))
            if cell.finding is not None:
                f = cell.finding
                found.append(PathwayFinding(f.id, f.severity, day, code or None, state,
                                            f.message))
            if cell.to_state != state:
                history.append(PathwayTransition(day, code, step, state, cell.to_state))
                state = cell.to_state
                entered = day
        return PathwayResult(state, entered, tuple(history), tuple(found))

    def _fire(self, record: PatientRecord, values: Mapping[str, Any],
              as_of: dt.date) -> set[str]:
        run = self._session()
        sid = run.sid
        fired: set[str] = set()
        try:
            for part in self._parts:
                text = _encode(part, values, as_of, sid, record.patient_id)
                try:
                    self._call(run, record.patient_id, part.name, "assert_text", text)
                finally:
                    self._close(run, part.name, "assert_text",
                                f'{{"sid":"{sid}","{_KIND}":"{_FACTS}"}}')
            fired = run.fired
        finally:
            self._run = None
        return fired


def _reads(rule: n.Rule) -> tuple[str, ...]:
    return rule.facts


def _priority(rule: n.Rule) -> int | None:
    return rule.priority


def _encode(part: _Part, values: Mapping[str, Any], as_of: dt.date, sid: str,
            patient_id: str) -> str:
    """The record's fact for one durable ruleset, as JSON text."""
    out = [f'{{"sid":"{sid}","{_KIND}":"{_FACTS}"']
    for name, key, kind, ranks in part.fields:
        value = values[name]
        if value is None:
            continue  # no value: an absent field
        if kind == "date":
            text = str((value - as_of).days)
        elif ranks is not None:
            text = str(ranks[value])
        elif kind in ("category", "text"):
            text = json.dumps(value)
        elif kind == "bool":
            text = "true" if value else "false"
        else:
            try:
                text = _number(value)
            except ValueError:
                raise RecordError(patient_id, f"fact {name}",
                                  "is NaN (not a number), which the durable engine cannot "
                                  "compare; check the record's values") from None
        out.append(key + text)
    return ",".join(out) + "}"


def _fire(rule_id: str) -> Callable[[_Run, Any], None]:
    def fire(run: _Run, c: Any) -> None:
        run.fired.add(rule_id)
    return fire


def _took(cell: _Cell) -> Callable[[_Run, Any], None]:
    def took(run: _Run, c: Any) -> None:
        run.moves.append((int(c.m["i"]), cell))
    return took


def _conflict(k: int) -> Callable[[_Run, Any], None]:
    def conflict(run: _Run, c: Any) -> None:
        run.same_day.add((int(c.y["day"]), k))
    return conflict


def _nothing(run: _Run, c: Any) -> None:
    """The anchor's action: nothing to record (it exists so every session runs an action)."""


#: ``json.dumps(obj, ensure_ascii=False)`` (as durable_rules writes messages), one encoder.
_JSON = json.JSONEncoder(ensure_ascii=False).encode


class _Matched:
    """What an action started by ``Rules.drain`` is given: the session state (``s``) and the
    matched messages by pattern name (``m``, ``x``...), decoded from JSON when first read.
    One per engine call, pointed at each action's message in turn."""

    __slots__ = ("_message", "_name", "_patterns", "s")

    def __init__(self, state: dict[str, Any]) -> None:
        self.s = state
        self._message = ""
        self._name = ""
        self._patterns: dict[str, Any] | None = None

    def __getattr__(self, pattern: str) -> Any:
        if pattern.startswith("_"):
            raise AttributeError(pattern)
        if self._patterns is None:
            self._patterns = json.loads(self._message)[self._name]
        return self._patterns.get(pattern)


def _free_rulesets(dre: Any, handles: list[Any]) -> None:
    for handle in handles:
        with contextlib.suppress(Exception):  # best effort, e.g. at interpreter shutdown
            dre.delete_ruleset(handle)


def _classes(engine: Any, dre: Any) -> tuple[Any, Any, Any]:
    """The host and ruleset classes, subclassing durable_rules' own (imported lazily)."""

    def init_ruleset(self: Any, name: str, host: Any, definition: dict[str, Any]) -> None:
        # engine.Ruleset.__init__, writing the definition with _dumps (see _number).
        self._actions = {}
        self._name = name
        self._host = host
        for rule_name, rule in definition.items():
            action = rule.pop("run")
            if isinstance(action, engine.Promise):
                self._actions[rule_name] = action.root
            else:
                self._actions[rule_name] = engine.Promise(action)
        self._handle = dre.create_ruleset(name, _dumps(definition))
        self._definition = definition

    def _first_action(handle: Any, call: Callable[[Any, str], Any],
                      text: str) -> tuple[Any, Any]:
        """Send ``text`` with ``call`` and start the first action it triggers, as
        ``engine.Ruleset.do_actions`` does: the state handle the actions complete on, and
        the started (state, message) as JSON text, or nothing."""
        result = call(handle, text)
        if result[0] == 1:
            raise engine.MessageNotHandledException(text)
        if result[0] == 2:
            raise engine.MessageObservedException(text)
        state_handle = 0 if result[0] == 3 else result[1]
        return state_handle, dre.start_action_for_state(handle, state_handle)

    class Rules(engine.Ruleset):  # type: ignore[misc]
        def __init__(self, name: str, host: Any, definition: dict[str, Any]) -> None:
            actions = {rule: spec["run"] for rule, spec in definition.items()}
            init_ruleset(self, name, host, definition)
            self._plain_actions = actions

        def drain(self, call: Callable[[Any, str], Any], text: str) -> None:
            """Send ``text`` with ``call`` (``assert_fact``/``assert_facts``) and run every
            action it starts, as ``engine.Ruleset.do_actions`` does (``start_action_for_state``
            then ``complete_and_start_action`` until no action is left), without decoding
            each matched message and the state from JSON and writing the state back after
            every action: these rules' actions never change the state, and a message is
            decoded only if an action reads it."""
            handle = self._handle
            state_handle, started = _first_action(handle, call, text)
            if not started:
                return
            state = json.loads(started[0])
            message = started[1]
            actions = self._plain_actions
            matched = _Matched(state)
            while message:
                # The action's name is the message's first key: {"RULE":{...}}.
                end = message.find('"', 2)
                name = message[2:end]
                action = (actions.get(name) if end > 2 and message.startswith('{"')
                          and "\\" not in name else None)
                if action is None:  # not plainly written: decode it
                    name = next(iter(json.loads(message)))
                    action = actions[name]
                matched._message = message
                matched._name = name
                matched._patterns = None
                try:  # noqa: SIM105 - try/except costs less than suppress() per action
                    action(matched)
                except BaseException:
                    # As durable_rules' own promise: an action's exception does not stop
                    # the engine call; the action keeps it and the call re-raises it.
                    pass
                message = dre.complete_and_start_action(handle, state_handle)

    class Call(engine.Closure):  # type: ignore[misc]
        """``engine.Closure`` without its action lease (two clock reads per action): every
        call here is synchronous, so an action never outlives its engine call."""

        def __init__(self, host: Any, ruleset: Any, state: dict[str, Any],
                     message: dict[str, Any], handle: Any) -> None:
            self.host = host
            self.s = engine.Content(state)
            self._handle = handle
            self._ruleset = ruleset
            self._completed = False
            self._deleted = False
            self._m = message

    def _done(error: Any) -> None:
        """The end of an asynchronous promise chain (none of this engine's)."""

    def _run_promises(promise: Any, c: Any) -> None:
        """``engine.Promise.run`` for a chain of synchronous promises (each function, then
        the next; an exception is kept in the state and the chain goes on), without the
        lease timer it defines per call, a closure that refers to itself and so left every
        action's closure and messages for the garbage collector."""
        while promise is not None:
            if not promise._sync:
                promise.run(c, _done)
                return
            try:
                promise._func(c)
            except BaseException as error:
                c.s.exception = f"exception caught {error}"
            promise = promise._next

    class Chart(engine.Statechart):  # type: ignore[misc]
        # engine.Ruleset's own methods (the chart's transitions call them), with one JSON
        # encoder instead of a new one per call; the same text.
        def assert_event(self, message: Any) -> Any:
            return self._handle_result(dre.assert_event(self._handle, _JSON(message)), message)

        def assert_fact(self, fact: Any) -> Any:
            return self._handle_result(dre.assert_fact(self._handle, _JSON(fact)), fact)

        def retract_fact(self, fact: Any) -> Any:
            return self._handle_result(dre.retract_fact(self._handle, _JSON(fact)), fact)

        def drain(self, call: Callable[[Any, str], Any], text: str) -> None:
            """Send ``text`` with ``call`` and run every action it starts, as
            ``engine.Ruleset.do_actions`` does (the same C calls in the same order, and
            durable_rules' own promise chains, whose transitions move the chart), with a
            :class:`Call` for each action; the state is written back when an action changed
            it (durable_rules writes it after every action; here only the first transition
            changes it, marking the chart running)."""
            handle = self._handle
            state_handle, started = _first_action(handle, call, text)
            if not started:
                return
            state = json.loads(started[0])
            written = dict(state)
            text = started[1]
            chains = self._chains
            while text:
                name, message = next(iter(json.loads(text).items()))
                chain = chains.get(name)
                if chain is not None and not isinstance(message.get("m"), list):
                    self._run_chain(chain, state, message)
                else:
                    _run_promises(self._actions[name],
                                  Call(self._host, self, state, message, state_handle))
                if state != written:  # the actions' state is this dict
                    dre.update_state(handle, _JSON(state))
                    written = dict(state)
                text = dre.complete_and_start_action(handle, state_handle)

        def _run_chain(self, chain: tuple[Any, ...], state: dict[str, Any],
                       message: dict[str, Any]) -> None:
            """One action's promise chain, as ``engine.Promise.run`` runs it with a Closure:
            a function of ours is called (an exception is kept in the state and the chain
            goes on); a transition (``engine.To``) is ``To._execute`` step for step: mark
            the chart running, retract the matched chart context (from a state with a
            trigger to itself), and assert (or post) the new state's label; a message no
            rule matches is ignored, as there."""
            for promise in chain:
                try:
                    if not isinstance(promise, engine.To):
                        matched = _Matched(state)
                        matched._patterns = message
                        promise._func(matched)
                        continue
                    state["running"] = True
                    to_state = promise._to_state
                    if promise._from_state == to_state:
                        continue
                    try:
                        if promise._from_state:
                            context = message["chart_context"]
                            if "sid" not in context:
                                context["sid"] = state.get("sid")
                            self.retract_fact(context)
                        label = {"label": to_state, "chart": 1, "sid": state.get("sid")}
                        if promise._assert_state:
                            self.assert_fact(label)
                        else:
                            self.assert_event(label)
                    except engine.MessageNotHandledException:
                        pass
                except BaseException as error:
                    state["exception"] = f"exception caught {error}"

        @classmethod
        def build(cls, name: str, host: Any,
                  chart: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            self = cls.__new__(cls)
            self._name = name
            self._host = host
            rules: dict[str, Any] = {}
            self._transform(None, None, None, chart, rules)
            shape = {r: {k: v for k, v in d.items() if k != "run"} for r, d in rules.items()}
            init_ruleset(self, name, host, rules)
            self._definition = chart
            #: Each action's promise chain, when every promise in it is synchronous: a
            #: function of ours or a transition (the chains durable_rules builds from a
            #: chart); others run through engine.Promise.
            chains: dict[str, tuple[Any, ...]] = {}
            self._chains = chains
            for rule_name, root in self._actions.items():
                chain = []
                promise = root
                while promise is not None:
                    chain.append(promise)
                    promise = promise._next
                if all(p._sync and (isinstance(p, engine.To) or p._func.__module__ == __name__)
                       for p in chain):
                    chains[rule_name] = tuple(chain)
            return self, shape

    class SyncHost(engine.Host):  # type: ignore[misc]
        def _run(self) -> None:
            """No background dispatch or timer threads: every call here is synchronous."""

        def add_ruleset(self, name: str, ruleset: Any) -> None:
            if name in self._ruleset_directory:
                raise DurableEngineError(f"durable ruleset {name!r} registered twice")
            self._ruleset_directory[name] = ruleset
            self._ruleset_list.append(ruleset)

        def assert_text(self, name: str, text: str) -> None:
            self._ruleset_directory[name].drain(dre.assert_fact, text)

        def assert_texts(self, name: str, text: str) -> None:
            self._ruleset_directory[name].drain(dre.assert_facts, text)

        def post_text(self, name: str, text: str) -> None:
            self._ruleset_directory[name].drain(dre.assert_event, text)

    return SyncHost, Rules, Chart


# -- the cache and the entry points -----------------------------------------------------------

_CACHE: dict[int, tuple[weakref.ref[Rulebook], _CompiledBook]] = {}
# Re-entrant: a book's finaliser (_evict) can run on this thread *while* _compiled holds the
# lock (garbage collection during a compile); a plain Lock deadlocked there.
_CACHE_LOCK = threading.RLock()


def _compiled(book: Rulebook) -> _CompiledBook:
    """The book compiled to durable_rules, once per Rulebook object (cached by identity).

    A Rulebook is immutable but not hashable (it holds mappings), so the cache is keyed by
    ``id(book)`` with a weak reference to check identity, and an entry is dropped when its
    book is garbage collected (which frees the C rulesets).
    """
    key = id(book)
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is not None and entry[0]() is book:
            return entry[1]
        compiled = _CompiledBook(book)
        _CACHE[key] = (weakref.ref(book), compiled)
        weakref.finalize(book, _evict, key, compiled)
        return compiled


def _evict(key: int, compiled: _CompiledBook) -> None:
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is not None and entry[1] is compiled:
            del _CACHE[key]


def assess(book: Rulebook, record: PatientRecord, as_of: dt.date) -> Assessment:
    """Evaluate ``book`` for ``record`` as of ``as_of`` on durable_rules.

    The result equals the reference engine's (``comparable()``), with ``engine="durable"``.
    Compiles the book on first use (cached). Raises EngineUnavailableError when the
    ``durable`` extra is not installed.
    """
    return _compiled(book).assess(book, record, as_of)


def definitions(book: Rulebook) -> dict[str, Any]:
    """The durable_rules ruleset definitions ``book`` compiles to, as JSON-ready data.

    Keys are durable ruleset names (``rules``, ``rules_2``... for the YAML rules, named by
    rule id; ``pathway$state`` for the statechart; ``pathway_same_day``); actions are left
    out. For review and debugging: it shows exactly what the engine matches.
    """
    return json.loads(_dumps(_compiled(book).definitions))  # type: ignore[no-any-return]
