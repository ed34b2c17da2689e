"""The repository is the map: every package folder is installed under the dbwatch namespace."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_mapped_in_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert folders == {"agent", "collectors", "rules", "exporters"}
    for folder in folders:
        assert mapping[f"dbwatch.{folder}"] == folder
        assert f"dbwatch.{folder}" in pyproject["tool"]["setuptools"]["packages"]


def test_lower_rooms_never_import_the_daemon():
    # DESIGN.md: imports follow the flow (agent -> collectors, rules, exporters -> model), never back up.
    allowed_from_agent = {"dbwatch.agent.model", "dbwatch.agent.configtypes", "dbwatch.agent.logs"}
    for folder in ("collectors", "rules", "exporters"):
        for path in (ROOT / folder).glob("*.py"):
            for line in path.read_text().splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] in ("from", "import") and words[1].startswith("dbwatch.agent"):
                    assert words[1] in allowed_from_agent, f"{path.name} imports {words[1]}"
