"""Security recommendations from the audit collectors' facts (:class:`PgAudit`, :class:`MySQLAudit`,
:class:`RedisAudit` of :mod:`dbwatch.model.facts.audit`).

- PostgreSQL: roles with SUPERUSER or REPLICATION beyond the bootstrap superuser and the configured
  ``expected_superusers``/``expected_replication``; ``trust`` or ``password`` lines in pg_hba
  (pg_hba_file_rules); ``ssl = off``; ``password_encryption = md5``; CREATE on schema public for PUBLIC;
  the agent's own role holding more than pg_monitor needs.
- MySQL/MariaDB: accounts with an empty password, anonymous accounts, root from '%',
  ``require_secure_transport = OFF``; the agent's own user holding more than it needs.
- Redis: the default user without a password on a non-loopback address.

Severity: ``critical`` where anyone who can reach the port gets in (an empty password, trust from a network,
Redis without AUTH and protected mode off), ``warning`` for the rest.
"""

from __future__ import annotations

import ipaddress
from typing import Generic, Iterable, TypeVar

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.audit import MySQLAudit, PgAudit, RedisAudit
from dbwatch.rules.advice_common import quote_ident, quote_literal, recommend
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["make_rules"]

A = TypeVar("A", PgAudit, MySQLAudit, RedisAudit)
#: what a monitoring role needs on PostgreSQL (pg_monitor and the roles it includes)
PG_AGENT_ROLES = frozenset({"pg_monitor", "pg_read_all_settings", "pg_read_all_stats", "pg_stat_scan_tables"})
#: global privileges a MySQL monitoring user needs (the rest of what it reads is SELECT on performance_schema)
MYSQL_AGENT_PRIVILEGES = frozenset({"PROCESS", "REPLICATION CLIENT", "BINLOG MONITOR", "SLAVE MONITOR",
                                    "REPLICA MONITOR", "USAGE", "SHOW DATABASES"})


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [PgUnexpectedPrivilegedRole(), PgHbaWeakAuth(), PgSslOff(), PgMd5Passwords(), PgPublicSchemaCreate(),
            PgAgentOverPrivileged(), MySQLWeakAccount(), MySQLInsecureTransport(), MySQLAgentOverPrivileged(),
            RedisWithoutAuth()]


class _Rule(Generic[A]):
    """A rule over one engine's audit fact (None while the audit collector, optional, is not configured)."""

    name = ""
    engines: tuple[str, ...] = ()
    audit_type: type[A]

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        audit = view.fact(self.audit_type)
        return [] if audit is None else list(self.judge(view, audit))

    def judge(self, view: TargetView, audit: A) -> Iterable[Finding]:
        raise NotImplementedError


class PgUnexpectedPrivilegedRole(_Rule[PgAudit]):
    name = "PgUnexpectedPrivilegedRole"
    engines = ("postgres",)
    audit_type = PgAudit

    def judge(self, view: TargetView, audit: PgAudit) -> Iterable[Finding]:
        for role in audit.roles:
            if role.name == audit.bootstrap_superuser:
                continue  # the cluster's owner: demoting it breaks the catalogs' owner, never offered
            if role.superuser and role.name not in audit.expected_superusers:
                what, fix = "SUPERUSER", f"ALTER ROLE {quote_ident(role.name)} NOSUPERUSER;"
            elif role.replication and not role.superuser and role.name not in audit.expected_replication:
                what, fix = "REPLICATION", f"ALTER ROLE {quote_ident(role.name)} NOREPLICATION;"
            else:
                continue
            yield recommend(
                self.name, view, Severity.WARNING,
                f"Role {role.name} has {what}, beyond the expected roles",
                f"{role.name} holds {what} (can log in: {role.can_login}); a superuser bypasses every permission "
                f"check and can run programs as the server's OS user, a replication role can read every byte "
                f"of the cluster. Remove it, or list the role under the audit collector's "
                f"expected_{'superusers' if what == 'SUPERUSER' else 'replication'} if it is intended.",
                {"role": role.name, "privilege": what},
                {"role": role.name, "privilege": what, "can_login": role.can_login,
                 "expected": list(audit.expected_superusers if what == "SUPERUSER" else audit.expected_replication)},
                fix, 0.6 if what == "SUPERUSER" else 0.4)


class PgHbaWeakAuth(_Rule[PgAudit]):
    name = "PgHbaWeakAuth"
    engines = ("postgres",)
    audit_type = PgAudit

    def judge(self, view: TargetView, audit: PgAudit) -> Iterable[Finding]:
        for rule in audit.hba or ():
            if rule.auth_method not in ("trust", "password"):
                continue
            local_only = pg_local_only(audit)
            network = rule.type != "local" and not _loopback(rule.address) and not local_only
            trust = rule.auth_method == "trust"
            where = "Unix socket" if rule.type == "local" else f"{rule.type} {rule.address or 'all'}"
            severity = Severity.CRITICAL if trust and network else Severity.WARNING
            risk = ("anyone who can connect from there logs in as any role it names, without a password"
                    if trust else "the password crosses the network in clear text")
            method = "peer" if rule.type == "local" else "scram-sha-256"
            # Only local users reach a socket or a loopback-only server: a hole, but not a network one.
            reach = "network" if network else "local users only"
            impact = 0.8 if severity == Severity.CRITICAL else (0.5 if network else 0.02)
            yield recommend(
                self.name, view, severity,
                f"pg_hba.conf line {rule.line_number}: {rule.auth_method} for {where}",
                f"Line {rule.line_number} ({rule.type} {','.join(rule.databases)} {','.join(rule.users)} "
                f"{rule.address or ''}) authenticates with {rule.auth_method}: {risk}. Use {method}.",
                {"line": str(rule.line_number)},
                {"line": rule.line_number, "type": rule.type, "databases": list(rule.databases),
                 "users": list(rule.users), "address": rule.address, "auth_method": rule.auth_method,
                 "reachable_by": reach, "listen_addresses": audit.listen_addresses},
                f"-- pg_hba.conf line {rule.line_number}: replace {rule.auth_method} with {method}, then:\n"
                f"SELECT pg_reload_conf();", impact)


class PgSslOff(_Rule[PgAudit]):
    name = "PgSslOff"
    engines = ("postgres",)
    audit_type = PgAudit

    def judge(self, view: TargetView, audit: PgAudit) -> Iterable[Finding]:
        if audit.ssl:
            return
        local = pg_local_only(audit)
        yield recommend(
            self.name, view, Severity.INFO if local else Severity.WARNING,
            "SSL is off: connections and passwords travel in clear text"
            + (" (the server listens on loopback only)" if local else ""),
            "ssl = off, so no client can encrypt its connection, whatever sslmode it asks for. Install a "
            "certificate and key in the data directory and turn it on (a reload suffices); then require it "
            "with hostssl lines in pg_hba.conf."
            + (f" listen_addresses = '{audit.listen_addresses}': no connection leaves this machine, so this "
               f"matters only once the server listens on a network." if local else ""),
            {}, {"ssl": False, "listen_addresses": audit.listen_addresses,
                 "reachable_by": "local users only" if local else "network"},
            "ALTER SYSTEM SET ssl = on;  -- with ssl_cert_file / ssl_key_file in place\nSELECT pg_reload_conf();",
            0.01 if local else 0.5)


class PgMd5Passwords(_Rule[PgAudit]):
    name = "PgMd5PasswordEncryption"
    engines = ("postgres",)
    audit_type = PgAudit

    def judge(self, view: TargetView, audit: PgAudit) -> Iterable[Finding]:
        if audit.password_encryption != "md5":
            return
        yield recommend(
            self.name, view, Severity.WARNING, "password_encryption = md5: new passwords are stored as MD5 hashes",
            "MD5 hashes are replayable (the hash is the secret) and deprecated since PostgreSQL 14. Switch to "
            "scram-sha-256, then set each password again so it is stored as SCRAM.",
            {}, {"password_encryption": audit.password_encryption},
            "ALTER SYSTEM SET password_encryption = 'scram-sha-256';\nSELECT pg_reload_conf();", 0.4)


class PgPublicSchemaCreate(_Rule[PgAudit]):
    name = "PgPublicSchemaCreate"
    engines = ("postgres",)
    audit_type = PgAudit

    def judge(self, view: TargetView, audit: PgAudit) -> Iterable[Finding]:
        if not audit.public_schema_create:
            return
        yield recommend(
            self.name, view, Severity.WARNING, f"Every role may CREATE in schema public of {audit.database}",
            "PUBLIC holds CREATE on schema public (the default before PostgreSQL 15): any role can plant a "
            "function or operator that shadows one another role calls (CVE-2018-1058).",
            {"database": audit.database}, {"database": audit.database, "public_create": True},
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;", 0.4)


class PgAgentOverPrivileged(_Rule[PgAudit]):
    name = "PgAgentOverPrivileged"
    engines = ("postgres",)
    audit_type = PgAudit

    def judge(self, view: TargetView, audit: PgAudit) -> Iterable[Finding]:
        extra = sorted(set(audit.agent_memberships) - PG_AGENT_ROLES)
        if not audit.agent_superuser and not extra:
            return
        held = "SUPERUSER" if audit.agent_superuser else ", ".join(extra)
        role = quote_ident(audit.agent_role)
        bootstrap = audit.agent_role == audit.bootstrap_superuser
        # The bootstrap superuser (oid 10) owns the catalogs and stays a superuser: the agent moves, not the role.
        demote = (f"\n-- keep {role}: it is the bootstrap superuser (it owns the cluster) and must stay one"
                  if bootstrap else f"\n-- or: ALTER ROLE {role} NOSUPERUSER; GRANT pg_monitor TO {role};")
        yield recommend(
            self.name, view, Severity.WARNING, f"dbwatch's role {audit.agent_role} holds more than it needs ({held})",
            f"The agent needs pg_monitor only; {held} lets a leaked agent credential change or read data. Give the "
            f"agent a role of its own with pg_monitor (pg_hba_file_rules needs its own grant, below).",
            {"role": audit.agent_role},
            {"role": audit.agent_role, "superuser": audit.agent_superuser, "extra_roles": extra,
             "bootstrap_superuser": bootstrap},
            "CREATE ROLE dbwatch LOGIN;\nGRANT pg_monitor TO dbwatch;\n"
            "GRANT SELECT ON pg_hba_file_rules TO dbwatch;\nGRANT EXECUTE ON FUNCTION pg_hba_file_rules() TO dbwatch;"
            + (demote if audit.agent_superuser else ""), 0.08)


class MySQLWeakAccount(_Rule[MySQLAudit]):
    name = "MySQLWeakAccount"
    engines = ("mysql",)
    audit_type = MySQLAudit

    def judge(self, view: TargetView, audit: MySQLAudit) -> Iterable[Finding]:
        for account in audit.accounts or ():
            who = f"{quote_literal(account.user)}@{quote_literal(account.host)}"
            if account.user == "":
                problem, fix, severity = "is anonymous", f"DROP USER {who};", Severity.WARNING
                text = "An anonymous account lets anyone log in with any user name (and often no password)."
            elif account.empty_password:
                problem, severity = "has an empty password", Severity.CRITICAL
                fix = f"ALTER USER {who} IDENTIFIED BY '<a strong password>';"
                text = "Anyone who can reach the server and knows the name logs in without a password."
            elif account.user == "root" and account.host == "%":
                problem, severity = "may log in from any host", Severity.WARNING
                fix = f"RENAME USER {who} TO 'root'@'localhost';"
                text = "The all-powerful root account accepts connections from every address."
            else:
                continue
            local = mysql_local_only(audit)
            yield recommend(
                self.name, view, severity, f"Account {account.user or '(anonymous)'}@{account.host} {problem}",
                f"{text} Authentication plugin: {account.plugin or '(default)'}.",
                {"account": f"{account.user}@{account.host}"},
                {"user": account.user, "host": account.host, "plugin": account.plugin,
                 "empty_password": account.empty_password,
                 "reachable_by": "local users only" if local else "network"},
                fix, (0.8 if severity == Severity.CRITICAL else 0.5) * (0.4 if local else 1.0))


class MySQLInsecureTransport(_Rule[MySQLAudit]):
    name = "MySQLInsecureTransport"
    engines = ("mysql",)
    audit_type = MySQLAudit

    def judge(self, view: TargetView, audit: MySQLAudit) -> Iterable[Finding]:
        if audit.require_secure_transport is not False:
            return
        local = mysql_local_only(audit)
        evidence = {"require_secure_transport": False, "have_ssl": audit.have_ssl, "ssl_cert": audit.ssl_cert,
                    "bind_address": audit.bind_address, "skip_networking": audit.skip_networking,
                    "reachable_by": "local users only" if local else "network"}
        weight = 0.15 if local else 1.0  # nothing crosses a network from a loopback-only server
        if not tls_configured(audit):
            # Requiring TLS of a server that cannot speak it refuses every TCP client: configure it first.
            yield recommend(
                self.name, view, Severity.WARNING, "The server has no TLS: clients connect in clear text",
                f"Unencrypted TCP connections are all there is (have_ssl = {audit.have_ssl}, ssl_cert = "
                f"{audit.ssl_cert or '(none)'}); passwords and data can be read on the network. Configure TLS "
                "first (certificate and key under [mysqld], a restart); only once clients connect with TLS, "
                "SET GLOBAL require_secure_transport = ON. Requiring it now would refuse every TCP client.",
                {}, {**evidence, "tls_configured": False},
                "-- under [mysqld], then restart the server:\n-- ssl_cert = /etc/mysql/server-cert.pem\n"
                "-- ssl_key = /etc/mysql/server-key.pem\n-- ssl_ca = /etc/mysql/ca.pem\n"
                "SHOW GLOBAL VARIABLES LIKE 'have_ssl';  -- YES once TLS is configured", 0.3 * weight)
            return
        yield recommend(
            self.name, view, Severity.WARNING, "require_secure_transport is OFF: clients may connect without TLS",
            f"TLS is configured (have_ssl = {audit.have_ssl}) but unencrypted TCP connections are accepted too; "
            "passwords and data can be read on the network. Move the clients to TLS, then require it (Unix "
            "socket connections stay allowed).",
            {}, {**evidence, "tls_configured": True},
            "SET GLOBAL require_secure_transport = ON;  -- and require_secure_transport = ON under [mysqld]",
            0.4 * weight)


def pg_local_only(audit: PgAudit) -> bool:
    """The server listens on loopback addresses or its Unix socket only (listen_addresses)."""
    if audit.listen_addresses is None:
        return False
    return all(_loopback(a.strip()) or a.strip() == "" for a in audit.listen_addresses.split(","))


def mysql_local_only(audit: MySQLAudit) -> bool:
    """skip_networking, or bind_address a loopback address."""
    return audit.skip_networking or all(_loopback(a.strip()) for a in (audit.bind_address or "*").split(","))


def tls_configured(audit: MySQLAudit) -> bool:
    """The server accepts TLS: have_ssl = YES (DISABLED: built with TLS, no certificate configured)."""
    return str(audit.have_ssl or "").upper() == "YES"


class MySQLAgentOverPrivileged(_Rule[MySQLAudit]):
    name = "MySQLAgentOverPrivileged"
    engines = ("mysql",)
    audit_type = MySQLAudit

    def judge(self, view: TargetView, audit: MySQLAudit) -> Iterable[Finding]:
        extra = sorted(p for p in audit.agent_privileges if p not in MYSQL_AGENT_PRIVILEGES)
        if not extra:
            return
        yield recommend(
            self.name, view, Severity.WARNING, f"dbwatch's user {audit.agent_user} holds more than it needs",
            f"The agent needs PROCESS, REPLICATION CLIENT (SLAVE MONITOR on MariaDB) and SELECT on "
            f"performance_schema (global SELECT reads every table); it also holds {', '.join(extra[:8])}{' …' if len(extra) > 8 else ''}.",
            {"user": audit.agent_user}, {"user": audit.agent_user, "extra_privileges": extra},
            "CREATE USER 'dbwatch'@'localhost' IDENTIFIED BY '<password>';\n"
            "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'dbwatch'@'localhost';\n"
            "GRANT SELECT ON performance_schema.* TO 'dbwatch'@'localhost';", 0.08)


class RedisWithoutAuth(_Rule[RedisAudit]):
    name = "RedisWithoutAuth"
    engines = ("redis",)
    audit_type = RedisAudit

    def judge(self, view: TargetView, audit: RedisAudit) -> Iterable[Finding]:
        if audit.bind is None or not audit.default_user_nopass or audit.default_user_enabled is False:
            return
        exposed = [a for a in audit.bind if not _loopback(a.lstrip("-"))] or ([] if audit.bind else ["*"])
        if not exposed:
            return
        guarded = audit.protected_mode is not False
        severity = Severity.WARNING if guarded else Severity.CRITICAL
        why = ("protected mode is all that refuses remote clients; one CONFIG SET away from an open server"
               if guarded else "anyone who reaches the port can read, write and run CONFIG SET")
        yield recommend(
            self.name, view, severity, f"Redis listens on {', '.join(exposed)} without a password",
            f"The default user needs no password and the server binds non-loopback addresses: {why}.",
            {}, {"bind": list(audit.bind), "protected_mode": audit.protected_mode, "default_user_nopass": True},
            "CONFIG SET requirepass '<a strong password>'\nCONFIG REWRITE", 0.9 if severity == Severity.CRITICAL else 0.5)


def _loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return address in ("localhost", "samehost")
