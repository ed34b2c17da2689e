"""The typed facts the Neo4j collector puts on a snapshot for rules to read (``snapshot.fact(T)``).

States keep Neo4j's own words (``online``, ``offline``, ``store copying``; ``Enabled``, ``Available``) as
``SHOW DATABASES`` and ``SHOW SERVERS`` return them. Query text is the collector's normalized form: literals
replaced by ``?``, whitespace collapsed, so it carries no values (and no secrets) from the application.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList


@dataclass(frozen=True, slots=True)
class Neo4jInstance:
    """The server dbwatch is connected to (``dbms.components()``)."""

    version: str
    edition: str  # community, enterprise


@dataclass(frozen=True, slots=True)
class Neo4jDatabase:
    """One row of ``SHOW DATABASES`` (one per database and server hosting it in a cluster)."""

    name: str
    type: str  # standard, system, composite ("" on 4.x, which has no such column)
    role: str  # primary, secondary, unknown (leader/follower/read_replica on 4.x)
    address: str
    requested_status: str
    current_status: str
    status_message: str

    @property
    def unavailable(self) -> bool:
        """Meant to be online (requestedStatus) but not online (currentStatus)."""
        return self.requested_status.lower() == "online" and self.current_status.lower() != "online"


@dataclass(frozen=True, slots=True)
class Neo4jServer:
    """One row of ``SHOW SERVERS`` (Neo4j 5 clusters)."""

    name: str
    address: str
    state: str  # Free, Enabled, Deallocating, Cordoned, Dropped
    health: str  # Available, Unavailable

    @property
    def available(self) -> bool:
        return self.health.lower() == "available"


@dataclass(frozen=True, slots=True)
class Neo4jTransaction:
    """A transaction from ``SHOW TRANSACTIONS`` running at least the collector's ``long_tx_seconds``."""

    database: str
    transaction_id: str
    username: str
    client_address: str
    status: str  # Running, Blocked by: [...], Closing, Terminated ...
    elapsed_seconds: float
    query: str  # normalized: literals are ``?``; "" when no query is executing


@dataclass(frozen=True, slots=True)
class Neo4jIndex:
    """One index from ``SHOW INDEXES`` of a database named by a long transaction."""

    database: str
    name: str
    type: str  # RANGE, TEXT, POINT, FULLTEXT, LOOKUP, VECTOR (BTREE on 4.x)
    entity_type: str  # NODE, RELATIONSHIP
    labels: tuple[str, ...]
    properties: tuple[str, ...]
    state: str  # ONLINE, POPULATING, FAILED


@dataclass(frozen=True, slots=True)
class Neo4jDatabases(FactList[Neo4jDatabase]):
    """Every row of ``SHOW DATABASES``."""


@dataclass(frozen=True, slots=True)
class Neo4jServers(FactList[Neo4jServer]):
    """Every row of ``SHOW SERVERS`` (absent on Neo4j 4.x)."""


@dataclass(frozen=True, slots=True)
class Neo4jLongTransactions(FactList[Neo4jTransaction]):
    """Transactions running longer than ``long_tx_seconds``, the longest first."""


@dataclass(frozen=True, slots=True)
class Neo4jIndexes(FactList[Neo4jIndex]):
    """The indexes of the databases the long transactions run in (``SHOW INDEXES`` per such database)."""

    #: the databases whose indexes were read (a database without indexes is listed here, with none above)
    databases: tuple[str, ...] = ()
