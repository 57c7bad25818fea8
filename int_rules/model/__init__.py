"""The compiled rule model: nodes (:mod:`.nodes`), the resolver from the YAML language
(:mod:`.resolve`) and the semantics every engine shares (:mod:`.semantics`).

See ``docs/architecture.md``.
"""

from .nodes import MAX_DAYS, RuleModel, ValueType, to_json

__all__ = ["MAX_DAYS", "RuleModel", "ValueType", "to_json"]
