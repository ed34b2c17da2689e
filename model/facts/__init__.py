"""The typed facts collectors leave on a snapshot for rules to read, one module per engine or family.

Every fact is a frozen dataclass stored under its own type: a collector calls ``snapshot.put(fact, ...)``, a
rule asks ``view.fact(SomeFact)`` (None when no collector of the target produced one: an optional collector
not configured) or ``view.need(SomeFact)`` (a fact the main collector always produces: when it is missing
or of the wrong type the rule's evaluation is a counted, logged error). A list of things is one
:class:`~dbwatch.model.facts.common.FactList` subclass holding a tuple (``Replicas``, ``Statements``...).
What every engine says in the same words (a server's role and replication link, ``dbwatch check``'s key
numbers) lives in :mod:`~dbwatch.model.facts.common`.
"""
