"""A real TimescaleDB for the tests: the vendored 2.28.3 built once, installed into the local PostgreSQL 15,
and a throwaway server (tests/pgcluster.py) that preloads it.

No package registry reachable here ships TimescaleDB for PostgreSQL 15, so its source release is vendored in
``../shared/vendor`` (beside the project root, on this machine only). :func:`ensure_installed` builds it when
its library is missing from ``pg_config --pkglibdir``: the build lives outside the checkout, in
``/var/cache/dbwatch-tests/timescaledb-<version>`` (``DBWATCH_TEST_CACHE`` moves it), keyed by version, so
a second run only installs (or, installed already, does nothing). Where ``../shared`` is absent (a user's
checkout) it says why, and the TimescaleDB tests skip with that reason.

Building took 182 s on this machine's two shared cores, installing from the cache 1.2 s; two test runs at
once take turns on a lock file rather than building twice.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tarfile
from pathlib import Path

from tests.pgcluster import PostgresServer

VERSION = "2.28.3"
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TARBALL = SHARED / "vendor" / f"timescaledb-{VERSION}.tar.gz"
CACHE = Path(os.environ.get("DBWATCH_TEST_CACHE", "/var/cache/dbwatch-tests")) / f"timescaledb-{VERSION}"
BUILD_TIMEOUT = 1800.0  # a loaded two-core machine; the build takes minutes, not half an hour
#: what the server preloads (pg_stat_statements as every test server does)
PRELOAD = "'pg_stat_statements,timescaledb'"
SETTINGS = {
    "shared_preload_libraries": PRELOAD,
    "timescaledb.telemetry_level": "off",
    "timescaledb.max_background_workers": "8",
    "max_worker_processes": "16",
}


def pg_config(flag: str) -> Path:
    return Path(subprocess.run(["pg_config", flag], capture_output=True, text=True, check=True).stdout.strip())


def installed() -> bool:
    """Whether this version's library and SQL are in the local PostgreSQL's directories."""
    try:
        lib, share = pg_config("--pkglibdir"), pg_config("--sharedir")
    except (OSError, subprocess.CalledProcessError):
        return False
    return (lib / f"timescaledb-{VERSION}.so").exists() and \
        (share / "extension" / f"timescaledb--{VERSION}.sql").exists()


def unavailable() -> str | None:
    """Why TimescaleDB cannot be had here (the reason to skip), or None when it is installed or can be built."""
    if installed():
        return None
    if not SHARED.is_dir():
        return f"{SHARED} is absent (a user's checkout): no vendored TimescaleDB {VERSION} source to build"
    if not TARBALL.exists():
        return f"{TARBALL} is missing: no vendored TimescaleDB {VERSION} source to build"
    return None


def ensure_installed() -> None:
    """Build (once, cached) and install TimescaleDB when missing; a failed step raises with its log's tail."""
    if installed():
        return
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / f"timescaledb-{VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run building: wait for it, then find it built
        if installed():
            return
        source, built = CACHE, CACHE / "build" / ".dbwatch-built"
        if not built.exists():
            if not (source / "bootstrap").exists():
                with tarfile.open(TARBALL) as tar:
                    tar.extractall(CACHE.parent, filter="data")
            _step(["./bootstrap", "-DREGRESS_CHECKS=OFF", "-DTAP_CHECKS=OFF", "-DWARNINGS_AS_ERRORS=OFF"], source)
            _step(["make", f"-j{os.cpu_count() or 2}"], source / "build")
            built.touch()
        _step(["make", "install"], source / "build")
    if not installed():
        raise RuntimeError(f"TimescaleDB {VERSION} built and installed, but pg_config's directories lack it")


def _step(args: list[str], cwd: Path) -> None:
    log = CACHE / "build.log"
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(args)}  (in {cwd})\n")
        out.flush()
        result = subprocess.run(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"building TimescaleDB {VERSION}: {' '.join(args)} failed in {cwd}:\n{tail}")


def timescale_server() -> PostgresServer:
    """A started throwaway PostgreSQL 15 preloading TimescaleDB (the caller destroys it)."""
    return PostgresServer(settings=SETTINGS).start()
