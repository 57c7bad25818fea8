"""Where the bundled rulebook lives: found with :mod:`importlib.resources`, installed or not.

The repository keeps one copy of everything the library reads at run time, at its top level:
``rulesets/`` (manifest, facts, pathway, rulesets, scenario tests, guidance copy),
``codelists/``, ``docs/safety/hazard-log.yaml`` and ``examples/records/`` (the records the
scenario tests name). Building the wheel maps those folders into the package as
``int_rules/_bundle/`` with the same layout, so every relative path between them
(``rulesets/rulebook.yaml`` -> ``../codelists``, a scenario's ``../../examples/records/...``,
``<rulebook>/../docs/safety/hazard-log.yaml``) holds in both places.

:func:`bundle_root` is the folder that holds them:

* an installed wheel: ``<site-packages>/int_rules/_bundle``;
* a source tree (an editable install, ``pip install -e .``, or the checkout on ``sys.path``):
  the repository root beside the ``int_rules`` package, so edits to the YAML take effect at once.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["BUNDLE_DIR", "bundle_root", "is_installed_bundle", "package_data_dir",
           "project_root"]

#: The bundle's folder inside the installed package (the wheel build maps it there).
BUNDLE_DIR = "_bundle"


def _package_dir() -> Path:
    package = resources.files("int_rules")
    if not isinstance(package, Path):  # e.g. imported from a zip archive
        raise RuntimeError(f"int_rules is installed as {package!r}, not as files on disk; "
                           "install it from the wheel (pip install int_rules) to use its "
                           "bundled rulebook")
    return package


def bundle_root() -> Path:
    """The folder holding the bundled ``rulesets/``, ``codelists/``, ``docs/safety/`` and
    ``examples/records/`` (absolute).

    The installed package's ``_bundle`` folder when there is one, else the source tree's root
    when it holds ``rulesets/``. When neither exists the installed location is returned, so that
    :func:`int_rules.load` reports the full path it tried.
    """
    package = _package_dir()
    installed = package / BUNDLE_DIR
    if installed.is_dir():
        return installed
    source_tree = package.parent
    if (source_tree / "rulesets").is_dir():
        return source_tree
    return installed


def is_installed_bundle(path: Path) -> bool:
    """Whether ``path`` lies inside the installed package's bundle (not a folder to write to)."""
    installed = (_package_dir() / BUNDLE_DIR).resolve()
    return path.resolve().is_relative_to(installed)


def package_data_dir() -> Path:
    """The package's own ``data/`` folder (synthetic-population profile, neighbourhoods)."""
    return _package_dir() / "data"


def project_root() -> Path:
    """Where generated files (``docs/schema/``, ``docs/reference/``) go by default: the source
    tree's root, or the working folder when int_rules runs from an installed wheel (never into
    the installed package)."""
    root = bundle_root()
    return Path.cwd() if is_installed_bundle(root) else root
