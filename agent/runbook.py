"""``dbwatch runbook -c CONFIG --target NAME [--format markdown|html]``: a disaster-recovery runbook written from
what dbwatch observes now.

The target and the members of its replication cluster are collected once (their main collector: role,
link, lag); its backup sources are read (newest backup, pgBackRest's PITR window) and the last restore drill
recorded in each workdir is quoted. The runbook follows the design's failover process — detect, promote,
redirect, monitor lag, rebuild the old primary — then restoring from backup, filled in with this cluster's
facts: which replica to promote (reachable, least behind) and the exact command for the cluster's failover
action, the restore commands for its backup tool and stanza, the measured restore time against the RTO, the
PITR window and the receivers that are alerted. DSNs never hold passwords, so none is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import html
import shlex
import sys
import urllib.parse
from dataclasses import dataclass, field

from dbwatch.agent.config import Config, load_or_report
from dbwatch.agent.jobs import TargetJobs
from dbwatch.agent.logs import setup_logging
from dbwatch.agent.runbook_backups import restore_commands_dirs
from dbwatch.collectors.backup_sources import SourceError, read_source
from dbwatch.collectors.pitr import read_window
from dbwatch.collectors.pitr_barman import read_barman
from dbwatch.collectors.pitr_dirs import read_dir_window
from dbwatch.collectors.restore_drill import last_result
from dbwatch.model import BackupSpec, Target
from dbwatch.model.facts.common import ReplicationLink
from dbwatch.model.facts.restore import RestoreDrill

__all__ = ["Member", "RunbookFacts", "add_runbook_command", "gather", "render_markdown", "render_html"]

EXIT_OK, EXIT_USAGE = 0, 2


@dataclass
class Member:
    target: Target
    up: bool
    role: str = "UNKNOWN"
    lag_seconds: float | None = None
    lag_bytes: float | None = None
    link_state: str = ""


@dataclass
class BackupFacts:
    spec: BackupSpec
    newest: str = ""
    newest_at: float | None = None
    pitr_earliest: float | None = None
    pitr_latest: float | None = None
    wal_missing: int = 0
    error: str | None = None
    drill: RestoreDrill | None = None


@dataclass
class RunbookFacts:
    target: Target
    generated_at: float
    members: list[Member] = field(default_factory=list)
    failover_action: str = "none"
    maximum_lag_bytes: float | None = None  # the cluster's maximum_lag_on_failover: a replica further behind is no candidate
    failover_command: list[str] = field(default_factory=list)
    patroni_url: str | None = None
    backups: list[BackupFacts] = field(default_factory=list)
    receivers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def primary(self) -> Member | None:
        return next((m for m in self.members if m.up and m.role == "PRIMARY"), None)

    @property
    def candidate(self) -> Member | None:
        """The reachable replica least behind (bytes, then seconds) and within maximum_lag_on_failover, as
        ReplicaPromotionRecommended picks it."""
        limit = self.maximum_lag_bytes
        replicas = [m for m in self.members if m.up and m.role == "REPLICA"
                    and (limit is None or m.lag_bytes is None or m.lag_bytes <= limit)]
        big = float("inf")
        return min(replicas, key=lambda m: (m.lag_bytes if m.lag_bytes is not None else big,
                                            m.lag_seconds if m.lag_seconds is not None else big), default=None)


def add_runbook_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    runbook = sub.add_parser("runbook", help="write a disaster-recovery runbook for a target from what dbwatch observes")
    runbook.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    runbook.add_argument("--target", required=True, metavar="NAME")
    runbook.add_argument("--format", choices=("markdown", "html"), default="markdown")
    runbook.set_defaults(handler=_runbook)


async def gather(config: Config, target_name: str) -> RunbookFacts:
    targets = config.resolved_targets()
    target = next(t for t in targets if t.name == target_name)
    cluster = [t for t in targets if target.cluster and t.cluster == target.cluster] or [target]
    facts = RunbookFacts(target, dt.datetime.now(dt.timezone.utc).timestamp())
    facts.members = list(await asyncio.gather(*(_member(t) for t in cluster)))
    settings = config.clusters.get(target.cluster) if target.cluster else None
    if settings is not None:
        facts.failover_action = settings.failover.action
        facts.maximum_lag_bytes = float(settings.failover.maximum_lag_on_failover)
        facts.failover_command = list(settings.failover.command)
        facts.patroni_url = settings.failover.patroni_url
    facts.backups = list(await asyncio.gather(*(_backup(target, spec) for spec in target.backups)))
    facts.receivers = [(str(getattr(r, "name", "")), str(getattr(r, "type", ""))) for r in config.receivers]
    return facts


def render_markdown(f: RunbookFacts) -> str:
    t = f.target
    out = [f"# Disaster-recovery runbook: {t.name}", "",
           f"Written by dbwatch at {_when(f.generated_at)} from what it observed then ({t.engine}"
           f"{', cluster ' + t.cluster if t.cluster else ''}). Regenerate it after every topology change.", "",
           "## Topology", "", "| member | role | reachable | lag | link |", "|---|---|---|---|---|"]
    for m in f.members:
        out.append(f"| {m.target.name} | {m.role.lower()} | {'yes' if m.up else 'NO'} | {_lag(m)} | {m.link_state or '-'} |")
    primary, candidate = f.primary, f.candidate
    out += ["", "## 1. Detect", "",
            "dbwatch pages `PrimaryDown` when the primary stops answering and its replicas confirm it "
            "(`ReplicaPromotionRecommended` names the candidate). Confirm by hand:", "", "```",
            *(_probe(m.target) for m in f.members), "```", "",
            "## 2. Promote", ""]
    if candidate is None:
        out.append("No reachable replica within the cluster's maximum_lag_on_failover was observed: there is "
                   "nothing safe to promote. Go to **6. Restore from backup**.")
    else:
        out += [f"Promote **{candidate.target.name}** (reachable, {_lag(candidate)} behind"
                f"{', the least of the replicas' if len([m for m in f.members if m.role == 'REPLICA']) > 1 else ''}).",
                f"The cluster's failover action is `{f.failover_action}`"
                f"{' (dbwatch runs it itself unless dry_run)' if f.failover_action != 'none' else ''}:", "",
                "```", _promote(f, candidate, primary), "```"]
    out += ["", "## 3. Redirect", "",
            "Point the applications (or the pooler, the DNS name, the virtual IP) at the promoted server, and "
            "fence the old primary so that it cannot take writes if it comes back (stop it, or firewall it).", "",
            "## 4. Monitor lag", "",
            "Watch the remaining replicas follow the new primary: `dbwatch check -c CONFIG`, the "
            "`ReplicationBroken` and lag alerts, `/api/v1/clusters`.", "",
            "## 5. Rebuild the old primary", "", "Rebuild it as a replica of the new primary, never start it as it was:",
            "", "```", *_rebuild(f), "```", "", "## 6. Restore from backup", ""]
    if not f.backups:
        out.append("No backup source is configured for this target (`backups:`): dbwatch knows of no backup.")
    for b in f.backups:
        out += _backup_section(b)
    out += ["", "## Who is alerted", ""]
    out += [f"- {name} ({kind})" for name, kind in f.receivers] or ["- no receiver is configured"]
    return "\n".join(out) + "\n"


def render_html(f: RunbookFacts) -> str:
    """The markdown above as a self-contained HTML page (headings, lists, tables, code blocks)."""
    body, code, table = [], False, False
    for line in render_markdown(f).splitlines():
        if line.startswith("```"):
            body.append("</pre>" if code else "<pre>")
            code = not code
            continue
        if code:
            body.append(html.escape(line))
            continue
        if table and not line.startswith("|"):
            body.append("</table>")
            table = False
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            tag = "th" if not table else "td"
            body.append(("<table>" if not table else "") + "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
            table = True
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<li>{html.escape(line[2:])}</li>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    if table:
        body.append("</table>")
    title = html.escape(f"Disaster-recovery runbook: {f.target.name}")
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:1em}"
            "td,th{border:1px solid #ccc;padding:.2em .5em}table{border-collapse:collapse}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# -- gathering ------------------------------------------------------------------------------------


async def _member(target: Target) -> Member:
    jobs = TargetJobs(target)
    try:
        snapshot = await jobs.collect(jobs.up_collector)
    finally:
        await jobs.close()
    member = Member(target, snapshot.ok)
    link = snapshot.fact(ReplicationLink) if snapshot.ok else None
    if link is not None:
        member.role, member.lag_seconds, member.lag_bytes = link.role.upper(), link.lag_seconds, link.lag_bytes
        member.link_state = link.link_state
    return member


async def _backup(target: Target, spec: BackupSpec) -> BackupFacts:
    facts = BackupFacts(spec, drill=last_result(target, spec))
    try:
        result = await read_source(spec)
        good = sorted((e for e in result.entries if e.ok), key=lambda e: e.finished_at)
        if good:
            facts.newest, facts.newest_at = good[-1].label, good[-1].finished_at
        window = None
        if spec.type == "pgbackrest" or spec.archive:
            window = await (read_window(spec, result) if spec.type == "pgbackrest" else read_dir_window(spec, result))
        elif spec.type == "barman" and (state := await read_barman(spec, result)) is not None:
            window = state.window
        if window is not None:
            facts.pitr_earliest, facts.pitr_latest, facts.wal_missing = window.earliest, window.latest, window.missing
    except (SourceError, TimeoutError, OSError) as exc:
        facts.error = str(exc)
    return facts


# -- writing --------------------------------------------------------------------------------------


def _host_port(target: Target) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(target.dsn)
    return parts.hostname or "localhost", str(parts.port or "")


@dataclass(frozen=True, slots=True)
class _Commands:
    """An engine's commands in the runbook; ``{host}``, ``{port}`` and ``{name}`` are filled in."""

    probe: str
    promote: str
    rebuild: tuple[str, ...]


#: engine -> its commands (an engine missing here gets the generic wording)
_COMMANDS = {
    "postgres": _Commands(
        probe="pg_isready -h {host} -p {port}   # {name}",
        promote="psql -h {host} -p {port} -U postgres -c 'SELECT pg_promote(true, 60)'",
        rebuild=("# on the old primary, with PostgreSQL stopped: follow {name}",
                 "pg_rewind --target-pgdata=$PGDATA --source-server='host={host} port={port} user=postgres'",
                 "# or, when pg_rewind cannot (no wal_log_hints/checksums), a fresh copy:",
                 "pg_basebackup -h {host} -p {port} -U replicator -D $PGDATA -R -X stream")),
    "mysql": _Commands(
        probe="mariadb-admin -h {host} -P {port} ping   # {name}",
        promote="mariadb -h {host} -P {port} -u root -e 'STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF'",
        rebuild=("# on the old primary: a fresh copy of {name}, then CHANGE MASTER TO MASTER_HOST='{host}', "
                 "MASTER_PORT={port}, MASTER_USE_GTID=slave_pos; START SLAVE;",)),
    "redis": _Commands(
        probe="redis-cli -h {host} -p {port} PING   # {name}",
        promote="redis-cli -h {host} -p {port} REPLICAOF NO ONE",
        rebuild=("redis-cli -h OLD_PRIMARY REPLICAOF {host} {port}",)),
}
_GENERIC = _Commands(probe="dbwatch check -c CONFIG   # {name}", promote="promote {name} with the engine's own tool",
                     rebuild=("# rebuild the old primary as a replica of the new one",))


def _command(template: str, target: Target) -> str:
    host, port = _host_port(target)
    return template.format(host=host, port=port, name=target.name)


def _probe(target: Target) -> str:
    return _command(_COMMANDS.get(target.engine, _GENERIC).probe, target)


def _promote(f: RunbookFacts, candidate: Member, primary: Member | None) -> str:
    target = candidate.target
    if f.failover_action == "patroni" and f.patroni_url:
        body = '{"candidate": "%s"}' % target.name
        return f"curl -s -X POST {f.patroni_url}/failover -H 'Content-Type: application/json' -d '{body}'"
    if f.failover_action == "command" and f.failover_command:
        names = {"{cluster}": target.cluster or "", "{primary}": primary.target.name if primary else "",
                 "{candidate}": target.name}
        argv = list(f.failover_command)
        for key, value in names.items():
            argv = [arg.replace(key, value) for arg in argv]
        return shlex.join(argv)
    return _command(_COMMANDS.get(target.engine, _GENERIC).promote, target)


def _rebuild(f: RunbookFacts) -> list[str]:
    candidate = f.candidate
    new = candidate.target if candidate else f.target
    lines = [_command(line, new) for line in _COMMANDS.get(f.target.engine, _GENERIC).rebuild]
    stanza = next((b.spec for b in f.backups if b.spec.type == "pgbackrest"), None)
    if stanza is not None:
        lines.append(f"# or from the backup: {_pgbackrest(stanza, '--delta --type=standby restore')}")
    return lines


def _backup_section(b: BackupFacts) -> list[str]:
    spec = b.spec
    out = [f"### {spec.name} ({spec.type})", ""]
    if b.error:
        out.append(f"The source could not be read now: {b.error}.")
    elif b.newest:
        out.append(f"Newest good backup: `{b.newest}`, finished {_when(b.newest_at)}.")
    if b.pitr_earliest is not None and b.pitr_latest is not None:
        out.append(f"Point-in-time recovery window: {_when(b.pitr_earliest)} to {_when(b.pitr_latest)}"
                   + (f" — **{b.wal_missing} {'binary log(s)' if spec.type == 'mariabackup' else 'WAL segment(s)'} "
                      "are missing from the archive**: recovery stops at the first." if b.wal_missing else "."))
    test = spec.restore_test
    if b.drill is not None and test is not None:
        d = b.drill
        verdict = "within" if d.duration <= test.rto else "**over**"
        state = f"succeeded, restore time {_seconds(d.duration)} ({verdict} the RTO of {_seconds(test.rto)})" \
            if d.ok else f"**failed**: {d.error}"
        out.append(f"Last restore drill: {_when(d.finished_at)}, {state}.")
    elif test is not None:
        out.append(f"No restore drill has run yet (RTO {_seconds(test.rto)}): run "
                   f"`dbwatch backup restore-test -c CONFIG --target TARGET --source '{spec.name}'`.")
    else:
        out.append("This backup is never restored by a drill: add `restore_test:` to the source.")
    out += ["", "```", *_restore_commands(spec, b.newest), "```", ""]
    return out


def _restore_commands(spec: BackupSpec, newest: str | None = None) -> list[str]:
    if spec.type in ("pg_basebackup", "mariabackup"):
        return restore_commands_dirs(spec, newest)
    if spec.type == "pgbackrest":
        return ["# PostgreSQL stopped, into its data directory: the newest backup, replayed to the end of the archive",
                _pgbackrest(spec, "--delta restore"),
                "# or to a point in time inside the window above",
                _pgbackrest(spec, "--delta --type=time \"--target=YYYY-MM-DD HH:MM:SS+00\" --target-action=promote restore"),
                "pg_ctl -D $PGDATA start"]
    if spec.type == "walg":
        return ["wal-g backup-fetch $PGDATA LATEST", "touch $PGDATA/recovery.signal   # restore_command = 'wal-g wal-fetch %f %p'"]
    if spec.type == "barman":
        barman = "barman" + (f" -c {shlex.quote(spec.config)}" if spec.config else "")
        recover = f"{barman} recover {spec.server or 'SERVER'} latest /var/lib/postgresql/15/main"
        return [f"{recover} --remote-ssh-command 'ssh postgres@HOST'",
                "# or to a point in time inside the window above",
                f"{recover} --target-time 'YYYY-MM-DD HH:MM:SS+00' --remote-ssh-command 'ssh postgres@HOST'"]
    return [f"# the newest file matching {spec.path}:",
            "pg_restore -d DATABASE --exit-on-error FILE      # PostgreSQL custom format (plain: psql -f FILE)",
            "mariadb < FILE                                   # MySQL/MariaDB dump",
            "cp FILE /var/lib/redis/dump.rdb && systemctl restart redis   # Redis RDB"]


def _pgbackrest(spec: BackupSpec, rest: str) -> str:
    options = [f"--stanza={spec.stanza}", *([f"--config={spec.config}"] if spec.config else []),
               *([f"--repo={spec.repo}"] if spec.repo else [])]
    return f"sudo -u postgres pgbackrest {' '.join(options)} {rest}"


def _lag(m: Member) -> str:
    if m.role == "PRIMARY":
        return "-"
    if m.lag_bytes is None and m.lag_seconds is None:
        return "unknown"
    parts = []
    if m.lag_bytes is not None:
        parts.append(f"{m.lag_bytes:.0f} bytes")
    if m.lag_seconds is not None:
        parts.append(f"{m.lag_seconds:.1f} s")
    return " / ".join(parts)


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def _when(at: float | None) -> str:
    if at is None:
        return "unknown"
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _runbook(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    setup_logging("error", config.logging.format)
    names = [t.name for t in config.targets]
    if args.target not in names:
        print(f"dbwatch runbook: no target named {args.target!r} (targets: {', '.join(names) or 'none'})",
              file=sys.stderr)
        return EXIT_USAGE
    facts = asyncio.run(gather(config, args.target))
    print(render_html(facts) if args.format == "html" else render_markdown(facts), end="")
    return EXIT_OK
