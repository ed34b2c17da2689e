"""The repository is the map: every package folder is installed under the dbwatch namespace."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_mapped_in_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert folders == {"model", "agent", "collectors", "rules", "exporters", "sqlshape"}
    for folder in folders:
        assert mapping[f"dbwatch.{folder}"] == folder
        assert f"dbwatch.{folder}" in pyproject["tool"]["setuptools"]["packages"]


def test_lower_rooms_never_import_the_daemon():
    # DESIGN.md: imports follow the flow (agent -> collectors, rules, exporters -> model), never back up.
    for folder in ("collectors", "rules", "exporters", "model", "sqlshape"):
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] in ("from", "import"):
                    assert not words[1].startswith("dbwatch.agent"), f"{path.name} imports {words[1]}"


def test_the_bottom_layer_imports_no_other_room():
    for path in (ROOT / "model").rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("from", "import") and words[1].startswith("dbwatch."):
                assert words[1].startswith("dbwatch.model"), f"model/{path.name} imports {words[1]}"


def test_the_statement_analysis_imports_only_the_bottom_layer():
    # sqlshape sits beside model: collectors and rules import it, it imports neither.
    for path in (ROOT / "sqlshape").rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("from", "import") and words[1].startswith("dbwatch."):
                assert words[1].startswith(("dbwatch.model", "dbwatch.sqlshape")), \
                    f"sqlshape/{path.name} imports {words[1]}"
