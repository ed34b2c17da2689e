"""A restore drill of a pgBackRest backup (1 GB by default) beside the bare restore it wraps, in one run.

Starts a throwaway PostgreSQL 15 archiving through pgBackRest (tests/test_backup.py's PgBackRest: a local
repository, no compression), fills one table to about ``--mb`` MB, takes a full backup, then alternates:

- bare: ``pgbackrest restore`` into a directory, ``pg_ctl start -w`` on a free port (the same settings the
  drill uses), wait until the server has promoted, as ``postgres``, no nice/ionice; then stop and delete;
- drill: ``run_drill`` on the same backup (no verify statements, no row-count comparison: only what a
  drill adds around restore + start — reading pgbackrest info for the space check, the lock, nice/ionice,
  the recovery polling), wall time from call to return minus its cleanup step.

Prints each run and the drill's overhead over the bare restore in %. Target: at most 10 %.
Run: `.venv/bin/python bench/restore_drill.py [--mb 1024] [--runs 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbwatch.agent.config import parse_config  # noqa: E402
from dbwatch.collectors.restore_drill import run_drill  # noqa: E402
from tests.pgcluster import BIN, PostgresServer  # noqa: E402
from tests.test_backup import STANZA, PgBackRest, _as_postgres  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dbwatch-bench-drill-"))
    os.chmod(root, 0o755)
    work = root / "work"
    work.mkdir()
    os.chmod(work, 0o755)
    pgbr = PgBackRest(root / "pgbr")
    server = PostgresServer(settings={"archive_mode": "on", "archive_command": "'/bin/true'"})
    pgbr.configure(server)
    server.settings["archive_command"] = pgbr.archive_command()
    try:
        server.start()
        rows = args.mb * 1024 * 1024 // 260  # about 260 bytes a row on disk
        began = time.monotonic()
        server.psql(f"CREATE TABLE big AS SELECT i, repeat('x', 200) AS pad FROM generate_series(1, {rows}) i")
        size = int(server.psql("SELECT pg_database_size('postgres')"))
        print(f"data: {size / 2**20:.0f} MiB in {time.monotonic() - began:.0f}s")
        pgbr.run("stanza-create")
        began = time.monotonic()
        pgbr.run("--type=full", "backup")
        print(f"backup: {time.monotonic() - began:.0f}s")
        target = parse_config(textwrap.dedent(f"""
            targets:
              - name: pg
                engine: postgres
                dsn: "{server.dsn()}"
                backups:
                  - type: pgbackrest
                    stanza: {STANZA}
                    config: {pgbr.conf}
                    restore_test: {{rto: 1h, workdir: {work}, compare_tables: 0}}
            """)).resolved_targets()[0]
        bare, drill = [], []
        for run in range(args.runs):
            bare.append(_bare(pgbr, work))
            result = asyncio.run(run_drill(target, target.backups[0]))
            assert result.ok, result.error
            cleanup = next(s.seconds for s in result.steps if s.name == "cleanup")
            drill.append(result.finished_at - result.started_at - cleanup)
            steps = ", ".join(f"{s.name} {s.seconds:.1f}s" for s in result.steps)
            print(f"run {run + 1}: bare {bare[-1]:.1f}s, drill {drill[-1]:.1f}s ({steps})")
        best_bare, best_drill = min(bare), min(drill)
        print(f"best: bare restore + start {best_bare:.1f}s, drill {best_drill:.1f}s, "
              f"overhead {100 * (best_drill / best_bare - 1):+.1f} % (target <= 10 %)")
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _bare(pgbr: PgBackRest, work: Path) -> float:
    """pgbackrest restore + start + promotion by hand, as the drill would without its own work."""
    directory = Path(tempfile.mkdtemp(dir=work))
    shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    hba = directory / "pg_hba.conf"
    hba.write_text("local all all trust\n")
    os.chmod(hba, 0o644)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{directory}' "
               f"-c hba_file='{hba}' -c archive_mode=off -c ssl=off -c shared_preload_libraries='' "
               "-c logging_collector=off -c shared_buffers=128MB")
    began = time.monotonic()
    try:
        subprocess.run(_as_postgres("pgbackrest", f"--config={pgbr.conf}", f"--stanza={STANZA}",
                                    "--log-level-console=warn", f"--pg1-path={data}", "--archive-mode=off",
                                    "restore"), check=True)
        subprocess.run(_as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-l", str(directory / "log"), "-w",
                                    "-o", options, "start"), check=True, stdout=subprocess.DEVNULL)
        while subprocess.run([str(BIN / "psql"), "-X", "-A", "-t", "-h", str(directory), "-p", str(port), "-U",
                              "postgres", "-c", "SELECT pg_is_in_recovery()"],
                             capture_output=True, text=True).stdout.strip() != "f":
            time.sleep(0.2)
        return time.monotonic() - began
    finally:
        subprocess.run(_as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
