"""The bundled rulebook is found wherever int_rules is installed, and the wheel carries it all.

Building and installing the wheel is CI's job (``.ci/run``, outside the checkout); these tests
hold the pieces that make it work: the lookup, the error when nothing is there, and that the
build's mapping covers every file the library reads at run time.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

import int_rules
from int_rules import bundle
from int_rules.codelists import default_codelists_dir
from int_rules.errors import RulesetError
from int_rules.review.hazards import default_hazard_log_path
from int_rules.rulebook import default_rulebook_dir
from int_rules.scenarios import load_scenarios

REPO = Path(__file__).resolve().parent.parent


def _force_include() -> dict[str, str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = config["tool"]["hatch"]["build"]["targets"]["wheel"][
        "force-include"]
    return mapping


def test_a_source_tree_reads_its_own_folders() -> None:
    # An editable install reads the repository's YAML in place: edits take effect at once.
    assert bundle.bundle_root() == REPO
    assert default_rulebook_dir() == REPO / "rulesets"
    assert default_codelists_dir() == REPO / "codelists"


def test_installed_bundle_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "int_rules"
    (package / bundle.BUNDLE_DIR / "rulesets").mkdir(parents=True)
    monkeypatch.setattr(bundle, "_package_dir", lambda: package)
    assert bundle.bundle_root() == package / bundle.BUNDLE_DIR
    assert bundle.is_installed_bundle(package / bundle.BUNDLE_DIR / "rulesets")
    assert not bundle.is_installed_bundle(tmp_path)


def test_no_rulebook_names_the_full_path_tried(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site-packages" / "int_rules"
    package.mkdir(parents=True)
    monkeypatch.setattr(bundle, "_package_dir", lambda: package)
    expected = package / bundle.BUNDLE_DIR / "rulesets" / "rulebook.yaml"
    with pytest.raises(RulesetError, match="no rulebook manifest") as err:
        int_rules.load()
    assert str(expected) in str(err.value)


def test_a_folder_without_a_rulebook_names_its_full_path(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    with pytest.raises(RulesetError) as err:
        int_rules.load("mine")
    assert str((tmp_path / "mine" / "rulebook.yaml").resolve()) in str(err.value)


def test_the_wheel_maps_every_file_read_at_run_time() -> None:
    """Each file the bundled rulebook, its scenarios and its hazard log read lies in a folder
    (or is a file) that the wheel build maps into ``int_rules/_bundle/`` at the same place."""
    mapping = _force_include()
    for source, target in mapping.items():
        assert (REPO / source).exists(), f"pyproject maps {source}, which does not exist"
        assert target == f"int_rules/{bundle.BUNDLE_DIR}/{source}", \
            f"{source} must keep its place inside the bundle (relative paths between files)"

    book = int_rules.load()
    read: set[Path] = {default_hazard_log_path(book.directory)}
    read |= {p for p in (REPO / "rulesets").rglob("*") if p.is_file()}
    read |= {p for p in default_codelists_dir().iterdir() if p.is_file()}
    read |= {Path(s.record_file) for s in load_scenarios(book) if s.record_file}

    def mapped(path: Path) -> bool:
        rel = path.resolve().relative_to(REPO).as_posix()
        return any(rel == src or rel.startswith(src.rstrip("/") + "/") for src in mapping)

    missing = sorted(str(p.relative_to(REPO)) for p in read if not mapped(p))
    assert not missing, f"read at run time but not in the wheel: {missing}"


def test_version_comes_from_the_package_metadata() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert int_rules.__version__ == config["project"]["version"]


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed wheel's layout: the bundle inside the package, as pyproject maps it; the
    working folder elsewhere."""
    package = tmp_path / "site-packages" / "int_rules"
    for source, target in _force_include().items():
        dest = tmp_path / "site-packages" / target
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, dest)
    monkeypatch.setattr(bundle, "_package_dir", lambda: package)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return package / bundle.BUNDLE_DIR


def test_an_installed_bundle_loads_the_same_rulebook(installed: Path) -> None:
    book = int_rules.load()
    assert book.directory == installed / "rulesets"
    assert book.sha256 == int_rules.load(REPO / "rulesets").sha256


def test_lint_of_an_installed_bundle_checks_the_hazard_log_without_tests(
        installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from int_rules.cli import main

    assert main(["lint"]) == 0
    out = capsys.readouterr().out
    assert "hazards-tests-skipped" in out
    assert "hazard-unknown-test" not in out
    assert "0 errors" in out


def test_generated_pages_go_to_the_working_folder_not_the_package(installed: Path) -> None:
    from int_rules.cli import main

    assert main(["docs"]) == 0
    assert (Path.cwd() / "docs" / "reference" / "index.md").is_file()
    assert not (installed / "docs" / "reference").exists()
