"""The replication and HA review's MongoDB collector: the replica set's configuration (votes and arbiters,
which ``replSetGetStatus`` does not show) and the cluster-wide default write concern
(``getDefaultRWConcern``, 4.4+). Facts: :class:`~dbwatch.model.facts.ha_review.HaSettings` (engine
``mongodb``); a refused or unknown command leaves its settings out and a note."""

from __future__ import annotations

from dbwatch.model import Snapshot
from dbwatch.model.facts.ha_review import HaSettings
from dbwatch.collectors.base import Collector
from dbwatch.collectors.mongodb import MongoSession
from dbwatch.model.options import CollectorOptions

__all__ = ["MongoHaReviewCollector"]


class MongoHaReviewCollector(Collector[MongoSession, CollectorOptions]):
    name = "ha"
    up_metric = None
    options_model = CollectorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        settings: dict[str, str] = {}
        async with self.session.lock:
            config, error = await self.session.command("admin", {"replSetGetConfig": 1})
            concern, concern_error = await self.session.command("admin", {"getDefaultRWConcern": 1})
        if config is not None:
            members = config.get("config", {}).get("members", [])
            settings["members"] = str(len(members))
            settings["voting_members"] = str(sum(1 for m in members if int(m.get("votes", 1)) > 0))
            settings["arbiters"] = str(sum(1 for m in members if m.get("arbiterOnly")))
        elif error is not None and error.code != 76:  # 76: not a replica set, nothing to review
            snapshot.notes.append(f"replSetGetConfig was refused ({error}); votes and arbiters are not reviewed")
        if concern is not None:
            w = (concern.get("defaultWriteConcern") or {}).get("w")
            settings["default_w"] = "" if w is None else str(w)
            settings["default_w_source"] = str(concern.get("defaultWriteConcernSource", "implicit"))
        elif concern_error is not None:
            snapshot.notes.append(f"getDefaultRWConcern was refused ({concern_error}); the default write concern "
                                  "is not reviewed")
        snapshot.put(HaSettings(engine="mongodb", in_recovery=False,
                                replicas_connected=max(0, int(settings.get("members", "1")) - 1), settings=settings))
