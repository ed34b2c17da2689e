"""Debian's prometheus-postgres-exporter (0.11.1 in bookworm) as a throwaway process, for side-by-side tests,
and a reader of the Prometheus text exposition that gives each family's type and label names.

Debian 0.11.1 enables its `database` and `bgwriter` collectors and its built-in default metrics
(pg_stat_database, pg_stat_database_conflicts, pg_locks, pg_stat_activity, pg_stat_replication,
pg_replication_slots, pg_stat_archiver, pg_settings); per-table statistics come from a queries.yaml
(`--extend.query-path`), the package's examples/queries.yaml. With --auto-discover-databases it adds a
``server`` label to every series.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.helpers import free_port, wait_for

EXPORTER = "/usr/bin/prometheus-postgres-exporter"
EXAMPLE_QUERIES = "/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Family:
    type: str = "untyped"
    labelnames: set[tuple[str, ...]] = field(default_factory=set)
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def parse_exposition(text: str, ignore_labels: Sequence[str] = ()) -> dict[str, Family]:
    """Families by sample name (a histogram's _bucket/_sum/_count each on their own), with their samples."""
    families: dict[str, Family] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels_text, value = match.groups()
        labels = {k: v for k, v in _LABEL.findall(labels_text or "") if k not in ignore_labels}
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        family = families.setdefault(name, Family(type=types.get(name, types.get(base, "untyped"))))
        family.labelnames.add(tuple(sorted(labels)))
        family.samples.append((labels, float(value)))
    return families


@contextmanager
def running_exporter(dsn: str, *flags: str) -> Iterator[str]:
    """The exporter on a free loopback port against ``dsn``; yields its /metrics URL."""
    port = free_port()
    proc = subprocess.Popen([EXPORTER, f"--web.listen-address=127.0.0.1:{port}", *flags],
                            env={**os.environ, "DATA_SOURCE_NAME": dsn}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: _answers(url), 30, "postgres_exporter to answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        return str(response.read().decode())


def _answers(url: str) -> bool:
    try:
        scrape(url)
        return True
    except OSError:
        return False
