"""A restore drill of a pg_basebackup backup (1 GB by default) beside the bare restore it wraps, in one run.

Starts a throwaway PostgreSQL 15 archiving with ``cp`` into a directory, fills one table to about ``--mb``
MB, takes a tar-format base backup (``pg_basebackup -Ft -X stream``, no compression), then alternates:

- bare: extract ``base.tar`` and ``pg_wal.tar``, write ``recovery.signal`` and a ``restore_command`` reading
  the archive directory, ``pg_ctl start -w`` on a free port, wait until the server has promoted, as
  ``postgres``, no nice/ionice; then stop and delete;
- drill: ``run_drill`` on the same source (no verify statements, no row-count comparison), wall time from
  call to return minus its cleanup step; and the same without its ``check_backup`` step, the
  ``pg_verifybackup`` a bare restore skips (it reads and checksums every file: work the drill does on
  purpose, reported apart).

Prints each run and the drill's overhead over the bare restore in %. Target: at most 10 % without
``check_backup``.
Run: `.venv/bin/python bench/restore_drill_basebackup.py [--mb 1024] [--runs 2]`.
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
from tests.pgcluster import BIN, RUN_AS, PostgresServer  # noqa: E402


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *argv] if RUN_AS else list(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dbwatch-bench-basebackup-"))
    os.chmod(root, 0o755)
    work, archive, backups = root / "work", root / "archive", root / "backups"
    for path in (work, archive, backups):
        path.mkdir()
        os.chmod(path, 0o755)
        if RUN_AS:
            shutil.chown(path, RUN_AS, RUN_AS)
    server = PostgresServer(settings={"archive_mode": "on",
                                      "archive_command": f"'test ! -f {archive}/%f && cp %p {archive}/%f'"})
    try:
        server.start()
        rows = args.mb * 1024 * 1024 // 260  # about 260 bytes a row on disk
        began = time.monotonic()
        server.psql(f"CREATE TABLE big AS SELECT i, repeat('x', 200) AS pad FROM generate_series(1, {rows}) i")
        size = int(server.psql("SELECT pg_database_size('postgres')"))
        print(f"data: {size / 2**20:.0f} MiB in {time.monotonic() - began:.0f}s")
        began = time.monotonic()
        subprocess.run(_as_postgres(str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(server.port), "-U",
                                    "postgres", "-c", "fast", "-D", str(backups / "base-1"), "-Ft", "-X", "stream"),
                       check=True)
        print(f"backup: {time.monotonic() - began:.0f}s")
        target = parse_config(textwrap.dedent(f"""
            targets:
              - name: pg
                engine: postgres
                dsn: "{server.dsn()}"
                backups:
                  - type: pg_basebackup
                    path: "{backups}/base-*"
                    archive: {archive}
                    restore_test: {{rto: 1h, workdir: {work}, compare_tables: 0}}
            """)).resolved_targets()[0]
        bare, drill, unchecked = [], [], []
        for run in range(args.runs):
            bare.append(_bare(backups / "base-1", archive, work))
            result = asyncio.run(run_drill(target, target.backups[0]))
            assert result.ok, result.error
            seconds = {s.name: s.seconds for s in result.steps}
            drill.append(result.finished_at - result.started_at - seconds["cleanup"])
            unchecked.append(drill[-1] - seconds["check_backup"])
            steps = ", ".join(f"{s.name} {s.seconds:.1f}s" for s in result.steps)
            print(f"run {run + 1}: bare {bare[-1]:.1f}s, drill {drill[-1]:.1f}s ({steps})")
        best_bare, best_drill, best_unchecked = min(bare), min(drill), min(unchecked)
        print(f"best: bare extract + start {best_bare:.1f}s, drill {best_drill:.1f}s "
              f"({100 * (best_drill / best_bare - 1):+.1f} %, pg_verifybackup included), "
              f"drill without check_backup {best_unchecked:.1f}s, overhead "
              f"{100 * (best_unchecked / best_bare - 1):+.1f} % (target <= 10 %)")
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _bare(backup: Path, archive: Path, work: Path) -> float:
    """Extract + recovery settings + start + promotion by hand, as the drill would without its own work."""
    directory = Path(tempfile.mkdtemp(dir=work))
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
        data.mkdir(mode=0o700)
        subprocess.run(["tar", "-x", "-f", str(backup / "base.tar"), "-C", str(data)], check=True)
        subprocess.run(["tar", "-x", "-f", str(backup / "pg_wal.tar"), "-C", str(data / "pg_wal")], check=True)
        with open(data / "postgresql.auto.conf", "a") as fh:
            fh.write(f"restore_command = 'cp {archive}/%f %p'\nrecovery_target_timeline = 'latest'\n")
        (data / "recovery.signal").touch()
        (data / "postgresql.conf").touch()
        if RUN_AS:
            subprocess.run(["chown", "-R", f"{RUN_AS}:{RUN_AS}", str(directory)], check=True)
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
