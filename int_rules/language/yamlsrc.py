"""Safe YAML loading that remembers where every value was written.

:func:`load_yaml` returns plain dicts/lists/scalars, but every mapping is a
:class:`LocatedDict` and every sequence a :class:`LocatedList` that know the line and column of
themselves and of each of their keys/items. :func:`locate` turns a path of keys (as pydantic
reports it) into a :class:`~int_rules.errors.Location`, so schema errors point at the exact
``file:line:column``.

Safety and strictness:

* Only YAML's safe subset is constructed: ``!!python/object`` and other tags are refused with a
  located error.
* Timestamps are *not* resolved by YAML: ``2026-02-30`` stays a string and the schema reports it
  as an invalid date at its position (PyYAML would raise a bare ``ValueError``).
* A key repeated in one mapping is an error (PyYAML would silently keep the last one).
* Aliases are bounded: a document whose values, with every alias expanded, would exceed
  :data:`MAX_EXPANDED_NODES` is refused at the node where the limit was crossed (a few hundred
  bytes of nested aliases can otherwise expand to millions of values).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import Location, RulesetError, RulesetErrors

__all__ = ["MAX_EXPANDED_NODES", "LocatedDict", "LocatedList", "load_yaml", "load_yaml_text",
           "locate", "shown_path", "validate_located"]

#: At most this many values in one YAML document with its aliases expanded (the largest
#: bundled ruleset has a few thousand).
MAX_EXPANDED_NODES = 200_000


class LocatedDict(dict[Any, Any]):
    """A dict that knows where it and each of its keys were written."""

    file: str = ""
    line: int | None = None
    column: int | None = None
    key_positions: dict[Any, tuple[int, int]]
    value_positions: dict[Any, tuple[int, int]]


class LocatedList(list[Any]):
    """A list that knows where it and each of its items were written."""

    file: str = ""
    line: int | None = None
    column: int | None = None
    item_positions: list[tuple[int, int]]


_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when present


class _Loader(_Base):  # type: ignore[misc]
    """Safe loading without timestamp resolution, with positions and duplicate-key checks.

    Built on libyaml's parser when PyYAML has it (about ten times faster; same positions),
    with our own constructors, so only YAML's safe subset is ever constructed.
    """

    source_name: str = "<string>"


# Drop the implicit timestamp resolver so dates stay strings (validated by the schema).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    out = LocatedDict()
    out.file = loader.source_name
    out.line = node.start_mark.line + 1
    out.column = node.start_mark.column + 1
    out.key_positions = {}
    out.value_positions = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise RulesetError(
                Location(loader.source_name, key_node.start_mark.line + 1,
                         key_node.start_mark.column + 1),
                "a mapping key must be a plain value",
            ) from None
        if key in out:
            first = out.key_positions[key]
            raise RulesetError(
                Location(loader.source_name, key_node.start_mark.line + 1,
                         key_node.start_mark.column + 1),
                f"key {key!r} appears twice in one mapping (first at line {first[0]})",
                key=str(key),
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_positions[key] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        out.value_positions[key] = (
            value_node.start_mark.line + 1,
            value_node.start_mark.column + 1,
        )
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    out = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    out.file = loader.source_name
    out.line = node.start_mark.line + 1
    out.column = node.start_mark.column + 1
    out.item_positions = [(c.start_mark.line + 1, c.start_mark.column + 1) for c in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


_PROBLEM_RE = re.compile(r"\s+")


def load_yaml_text(text: str, source_name: str = "<string>") -> Any:
    """Parse YAML text safely, with positions. Raises RulesetError on any YAML problem."""
    loader = _Loader(text)
    loader.source_name = source_name
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, source_name)
        return loader.construct_document(node)
    except RulesetError:
        raise
    except RecursionError:
        raise RulesetError(Location(source_name), "invalid YAML: nested too deeply") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = (
            Location(source_name, mark.line + 1, mark.column + 1)
            if mark is not None
            else Location(source_name)
        )
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor" in problem:
            problem = (
                "tag not allowed: rulesets are loaded with YAML's safe subset only "
                f"({_PROBLEM_RE.sub(' ', problem)})"
            )
        raise RulesetError(loc, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise RulesetError(Location(source_name), f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _check_expanded_size(root: yaml.Node, source_name: str) -> None:
    """Refuse a document that expands (aliases followed) to more than MAX_EXPANDED_NODES."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once (the constructor refuses it)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                mark = node.start_mark
                raise RulesetError(
                    Location(source_name, mark.line + 1, mark.column + 1),
                    f"this value expands to more than {MAX_EXPANDED_NODES:,} values once its "
                    "aliases (*name) are followed; write it out or use fewer nested aliases")
        sizes[id(node)] = total
        return total

    size(root)


def load_yaml(path: str | Path, display_name: str | None = None) -> Any:
    """Read and parse a YAML file safely, with positions.

    ``display_name`` is how the file is named in errors (default: the path as given).
    """
    p = Path(path)
    name = display_name or str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesetError(Location(name), f"cannot read file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise RulesetError(Location(name), f"not UTF-8 text: {exc.reason}") from None
    return load_yaml_text(text, name)


def locate(root: Any, path: Sequence[int | str], fallback_file: str = "<unknown>",
           at_key: bool = False) -> Location:
    """The position of the value at ``path`` inside ``root`` (as deep as it can be followed).

    For a key that is missing, the position of the mapping that should have held it. With
    ``at_key``, the position of the last key itself (for "unknown key" errors).
    """
    node = root
    file = getattr(root, "file", "") or fallback_file
    best: tuple[int | None, int | None] = (getattr(root, "line", None),
                                            getattr(root, "column", None))
    for part in path:
        if isinstance(node, LocatedDict) and part in node:
            if at_key and part == path[-1]:
                return Location(node.file or file, *node.key_positions[part])
            best = node.value_positions.get(part, best)
            if not isinstance(node[part], (LocatedDict, LocatedList)):
                best = node.key_positions.get(part, best) if part not in node.value_positions \
                    else node.value_positions[part]
            node = node[part]
        elif isinstance(node, LocatedList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_positions[part]
            node = node[part]
        else:
            # A part that does not name a key or item here (e.g. a union tag pydantic adds to
            # its error paths, or a missing key): stay at the deepest position found so far.
            continue
        if isinstance(node, (LocatedDict, LocatedList)):
            file = node.file or file
    return Location(file, best[0], best[1])


_M = TypeVar("_M", bound=BaseModel)


def shown_path(path: Path, rulebook_dir: Path) -> str:
    """``path`` as errors and outputs name it: relative to the folder holding the rulebook
    directory when it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(rulebook_dir.resolve().parent))
    except ValueError:
        return str(path)


def validate_located(model: type[_M], raw: Any, shown: str, unknown_key: str, *,
                     unknown_at_key: bool = False) -> _M:
    """``raw`` (as :func:`load_yaml` returns it) validated as ``model``; every problem a
    :class:`RulesetError` at its ``file:line:column`` (several as :class:`RulesetErrors`).
    ``unknown_key`` is the message for a key the model does not know; ``unknown_at_key``
    places that error on the key itself rather than on its mapping."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = unknown_key
            elif err["type"] == "missing":
                msg = "required key is missing"
            at_key = unknown_at_key and err["type"] == "extra_forbidden"
            errors.append(RulesetError(locate(raw, loc, shown, at_key), msg,
                                       ".".join(str(p) for p in loc) or None))
        raise (errors[0] if len(errors) == 1 else RulesetErrors(errors)) from None
