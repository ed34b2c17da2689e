"""TargetJobs.collect, the one way a collection runs, on failures that are configuration problems.

Starts: nothing (the target's password cannot be read, so no connection is attempted).
"""

from __future__ import annotations

import logging

from dbwatch.agent.jobs import TargetJobs
from dbwatch.model import CollectorSettings, Target


async def test_an_unreadable_password_file_is_a_failed_collection_naming_the_file_without_a_traceback(
        tmp_path, caplog):
    missing = tmp_path / "pg-password"
    target = Target(name="db", engine="postgres", dsn="postgresql://dbwatch@127.0.0.1:1/postgres", labels={},
                    collectors={"postgres": CollectorSettings(15, 5)}, password_file=str(missing))
    jobs = TargetJobs(target)
    caplog.set_level(logging.INFO)
    try:
        snapshot = await jobs.collect("postgres")
    finally:
        await jobs.close()
    assert not snapshot.ok
    assert snapshot.error == f"cannot read password_file {missing} (No such file or directory)"
    assert snapshot.family("dbwatch_target_up").value() == 0 and snapshot.family("pg_up").value() == 0
    assert not any(r.exc_info for r in caplog.records), "a configuration problem is not an internal error"
