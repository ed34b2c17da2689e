"""The manual: README.md and docs/*.md point only to what exists, and docs/metrics.md is the catalog's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dbwatch.agent.metricsdoc import render
from dbwatch.collectors.catalog import all_families
from tests.helpers import catalog_specs

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]
# [text](target) outside code spans; a target with a scheme (https:, mailto:) is not a file of the repository.
_LINK = re.compile(r"(?<!\\)\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation but - and _ dropped, spaces as -."""
    found: set[str] = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add("".join(c for c in title if c.isalnum() or c in " -_").replace(" ", "-"))
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return _LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading_of_the_repository(page):
    checked = 0
    for link in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: [..]({link}) points to {path}, which is not in the repository"
        assert ROOT in target.parents or target == ROOT, f"{page.name}: [..]({link}) leaves the repository"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target), f"{page.name}: [..]({link}): {target.name} has no heading #{anchor}"
        checked += 1
    assert page != ROOT / "README.md" or checked >= 10, "README.md should link to the docs"


def test_docs_metrics_md_is_generated_from_the_catalog():
    assert (ROOT / "docs" / "metrics.md").read_text() == render(), "docs/metrics.md is stale: run `make docs`"


def test_the_catalog_gives_each_name_one_type_and_labels_and_every_template_its_values():
    # A name may be declared by several engines (dbwatch_sql_parse_failures_total), always as one family.
    shapes: dict[str, set[tuple[object, tuple[str, ...]]]] = {}
    for spec in catalog_specs():
        for name in spec.names or {spec.name}:
            shapes.setdefault(name, set()).add((spec.type, spec.labels))
    assert not {name for name, shape in shapes.items() if len(shape) > 1}
    for spec in all_families():
        assert spec.collector, f"{spec.name}: which collector emits it?"
        # a closed template lists every value; an open one (any value) may give examples
        assert not spec.is_template or spec.values or spec.open or spec.name.endswith("*"), f"{spec.name}: no values"


def test_the_readme_lists_every_command_of_the_cli():
    import argparse

    from dbwatch.agent.cli import _parser

    def commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return [prefix]
        return [c for name, sub in subs[0].choices.items() for c in commands(sub, f"{prefix} {name}")]

    table = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `dbwatch ")]
    for command in commands(_parser(), "dbwatch"):
        assert any(line.startswith(f"| `{command} ") for line in table), f"README.md's table lacks `{command}`"


def test_the_readme_stays_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines: move details to docs/"
