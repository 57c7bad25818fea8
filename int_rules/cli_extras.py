"""Registry of the CLI subcommands that live in their own modules.

Each module that adds a subcommand exposes ``register(subparsers)``; list it here. Kept in one
place so the core CLI stays small and the import of heavy modules (DuckDB) waits until a
subcommand that needs them runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .population.cli import register as population_register
from .review.cli import register as review_register

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

COMMANDS: list[Register] = [
    review_register,  # docs, lint, diff, safety-case (int_rules/review)
    population_register,  # population, synth, demo (int_rules/population)
]
