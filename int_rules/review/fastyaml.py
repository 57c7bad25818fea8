"""Located YAML reading for lint, on libyaml's C parser when it is there.

Lint reads every file as written (to find unknown and unused names even when the rulebook does
not load) and then loads the rulebook. This reads the files with the same safe, located
semantics as :func:`int_rules.language.yamlsrc.load_yaml` (positions of every key and item,
duplicate keys refused, timestamps left as strings) but with libyaml's C scanner and parser,
about ten times faster. Without libyaml it simply calls ``load_yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import Location, RulesetError
from ..language import yamlsrc

__all__ = ["read_yaml"]

_CLoader: Any = getattr(yaml, "CSafeLoader", None)

if _CLoader is not None:

    class _FastLoader(_CLoader):  # type: ignore[misc]
        """CSafeLoader with yamlsrc's located constructors and without timestamps."""

        source_name: str = "<string>"

    _FastLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                yamlsrc._construct_mapping)
    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                                yamlsrc._construct_sequence)


def read_yaml(path: Path, shown: str) -> Any:
    """Parse a YAML file with positions; raise RulesetError (located) on any problem."""
    if _CLoader is None:  # pragma: no cover - libyaml is normally present
        return yamlsrc.load_yaml(path, shown)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesetError(Location(shown), f"cannot read file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise RulesetError(Location(shown), f"not UTF-8 text: {exc.reason}") from None
    loader = _FastLoader(text)
    loader.source_name = shown
    try:
        return loader.get_single_data()
    except RulesetError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(shown, mark.line + 1, mark.column + 1) if mark is not None \
            else Location(shown)
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor" in problem:
            problem = "tag not allowed: rulesets are loaded with YAML's safe subset only"
        raise RulesetError(loc, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise RulesetError(Location(shown), f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
