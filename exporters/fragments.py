"""A collection's part of the exposition (:class:`Fragment`), what vanished from it, and the joining of every
fragment into a whole body's snapshot part: the data exporters/prometheus.py keeps and the pure functions over
it, which a worker thread may run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

from dbwatch.exporters.joined import DeflateCache, Group, Joined
from dbwatch.exporters.staleness import Lines
from dbwatch.exporters.text_format import first, header_bytes
from dbwatch.model import MetricFamily

__all__ = ["Fragment", "Parts", "joined_of", "vanished_series"]


@dataclass(slots=True)
class Fragment:
    """One (target, collector)'s latest collection: per family (one per name), its sample lines in the text
    format. Two aligned lists rather than a dict of pairs: a fleet holds ~200k of them."""

    prefix: tuple[tuple[str, str], ...]  # the target labels it was rendered with, sorted
    stamp_ms: int  # when its values were read: the middle of the collection, in ms since the epoch
    families: list[MetricFamily]
    bodies: list[bytes]  # each line ends with " <stamp_ms>"
    _openmetrics: list[bytes] | None = None

    def names(self) -> Iterator[str]:
        return (family.name for family in self.families)

    def columns(self, openmetrics: bool) -> tuple[list[MetricFamily], list[bytes]]:
        """Its families and their lines with the timestamp on every line: ms in the text format, seconds in
        OpenMetrics (made on first need). The lists themselves: a newer collection replaces them rather than
        changing them, so a worker thread may read them."""
        if not openmetrics:
            return self.families, self.bodies
        if self._openmetrics is None:
            ms = self.stamp_ms
            text_end, end = f" {ms}\n".encode(), f" {ms // 1000}.{ms % 1000:03d}\n".encode()
            self._openmetrics = [body.replace(text_end, end) for body in self.bodies]
        return self.families, self._openmetrics

    def entries(self, openmetrics: bool) -> Iterator[tuple[MetricFamily, bytes]]:
        """Each family and its lines, as :meth:`columns` gives them."""
        families, bodies = self.columns(openmetrics)
        return zip(families, bodies)


Parts = tuple[int, list[tuple[list[MetricFamily], list[bytes]]], list[tuple[MetricFamily, bytes]], dict[str, int],
               DeflateCache, bool, bytes]


def joined_of(key: int, columns: list[tuple[list[MetricFamily], list[bytes]]],
               graves: list[tuple[MetricFamily, bytes]], edition: dict[str, int], deflates: DeflateCache,
               openmetrics: bool, jobs: bytes) -> Joined:
    """The snapshot part of a scrape: per family name, in order, its header and every collection's lines for it
    (references to the fragments' bytes, never joined into a copy: exporters/joined.py), then the ``jobs``'
    figures. Reads only what it is given, so that it may run in a worker thread while collections land."""
    by_name: dict[str, tuple[MetricFamily, list[bytes]]] = {}
    for families, bodies in columns:
        for family, body in zip(families, bodies):
            entry = by_name.get(family.name)
            if entry is None:
                entry = by_name[family.name] = (family, [])
            entry[1].append(body)
    buried: dict[str, list[tuple[MetricFamily, bytes]]] = {}
    for family, lines in graves:
        buried.setdefault(family.name, []).append((family, lines))
    deflates.retain(by_name)
    groups = []
    for name in sorted(by_name.keys() | buried.keys()):
        family, bodies = by_name[name] if name in by_name else (buried[name][0][0], [])
        tombstones = buried.get(name)
        parts = [header_bytes(family, openmetrics), *bodies]
        if tombstones is None and not openmetrics:
            groups.append(Group(name, edition.get(name, 0), parts))
        else:  # compressed anew: tombstones go once every scraper saw them; OpenMetrics is rarely asked for
            parts.extend(body for _, body in tombstones or ())
            groups.append(Group(None, 0, parts))
    if jobs:
        groups.append(Group(None, 0, [jobs]))
    return Joined(key, groups, deflates)


def vanished_series(old: Fragment, prefix: tuple[tuple[str, str], ...] | None,
              latest: Mapping[str, MetricFamily] | None) -> dict[str, tuple[MetricFamily, Lines]]:
    """The series of ``old`` that the ``latest`` families (rendered with ``prefix``) no longer have (all of
    them when they come with another label prefix)."""
    out: dict[str, tuple[MetricFamily, Lines]] = {}
    same_prefix = latest is not None and prefix == old.prefix
    for family, body in old.entries(False):
        name = family.name
        kept = latest.get(name) if latest is not None and same_prefix else None
        if kept is family:  # shared by the new collection (agent/jobs.py): nothing of it vanished
            continue
        if kept is not None and kept.labelnames == family.labelnames:
            if not family.labelnames and (kept.samples or not family.samples):  # its one series is still there
                continue
            now = list(map(first, kept.samples))
            if now == list(map(first, family.samples)):  # the usual case, and cheap when the tuples are the same
                continue
            present = set(now)
            gone = [i for i, (labelvalues, _) in enumerate(family.samples) if labelvalues not in present]
        else:
            gone = list(range(len(family.samples)))
        if gone:
            lines = body.decode().split("\n")  # one line per sample, in order
            cut = -len(f" {old.stamp_ms}")  # a tombstone goes without a timestamp
            out[name] = (family, {family.samples[i][0]: lines[i][:cut] for i in gone})
    return out
