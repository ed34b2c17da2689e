"""``server.web_config_file``: TLS and basic auth on dbwatch's listener, in the exporter-toolkit format.

Starts: certificates made with the openssl command (a CA, a server certificate for 127.0.0.1, a client
certificate); dbwatch's HTTP server in-process on loopback (aiohttp, real TLS sockets); a real `dbwatch run`
(tests/agentproc.py) watching its own host, scraped over TLS with basic auth by a real Prometheus (Debian
package prometheus) on a free loopback port.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import yaml

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.http import HttpServer
from dbwatch.agent.store import SnapshotStore
from dbwatch.agent.webconfig import WebConfigError, load_web_config
from dbwatch.exporters.prometheus import Exposition
from tests.agentproc import AgentProcess
from tests.helpers import free_port, wait_for

PASSWORD = "s3cret-Scrape-pw"


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """ca.crt; server.crt/key for IP 127.0.0.1 signed by it; client.crt/key signed by it."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=dbwatch test CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)
    return d


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()


def write_web_config(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# -- the file: checks that name the key and never quote a hash -------------------------------------------


def test_a_valid_web_config_loads_tls_and_users(tmp_path, pki, password_hash):
    web = load_web_config(write_web_config(tmp_path / "web.yml", {
        "tls_server_config": {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key")},
        "basic_auth_users": {"prometheus": password_hash}}))
    assert web.tls is not None and web.tls.min_version == ssl.TLSVersion.TLSv1_2
    assert list(web.users) == ["prometheus"]
    assert isinstance(web.ssl_context(), ssl.SSLContext)


def test_relative_paths_in_the_web_config_are_relative_to_its_directory(tmp_path, pki):
    for name in ("server.crt", "server.key"):
        shutil.copy(pki / name, tmp_path / name)
    web = load_web_config(write_web_config(tmp_path / "web.yml", {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}))
    assert web.tls is not None and web.tls.cert_file == tmp_path / "server.crt"


@pytest.mark.parametrize("content, expected", [
    ({"tls_server_config": {"cert_file": "/nonexistent/server.crt", "key_file": "/nonexistent/server.key"}},
     ["tls_server_config.cert_file: cannot read /nonexistent/server.crt",
      "tls_server_config.key_file: cannot read /nonexistent/server.key"]),
    ({"tls_server_config": {"key_file": "k"}}, ["tls_server_config.cert_file: required when tls_server_config is given"]),
    ({"tls_server_config": {"cert_file": "c", "key_file": "k", "cipher_suites": ["TLS_AES_128_GCM_SHA256"]}},
     ["tls_server_config.cipher_suites: not supported by dbwatch"]),
    ({"tls_server_config": {"cert_file": "c", "key_file": "k", "client_auth_type": "RequireAndVerifyClientCert"}},
     ["tls_server_config.client_ca_file: required by client_auth_type RequireAndVerifyClientCert"]),
    ({"tls_server_config": {"cert_file": "c", "key_file": "k", "min_version": "SSL3"}},
     ["tls_server_config.min_version: expected one of TLS10, TLS11, TLS12, TLS13"]),
    ({"basic_auth_users": {"alice": "hunter2-plaintext"}}, ["basic_auth_users.alice: expected a bcrypt hash"]),
    ({"basic_auth_user": {}}, ["basic_auth_user: unknown key"]),
])
def test_a_bad_web_config_names_the_key_that_is_wrong(tmp_path, pki, content, expected):
    tls = content.get("tls_server_config", {})
    for key in ("cert_file", "key_file"):  # relative placeholders: real files, so only the named problem shows
        if tls.get(key) in ("c", "k"):
            tls[key] = str(pki / ("server.crt" if key == "cert_file" else "server.key"))
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write_web_config(tmp_path / "web.yml", content))
    for line in expected:
        assert any(problem.startswith(line) for problem in caught.value.problems), caught.value.problems
    assert "hunter2" not in str(caught.value.problems)


def test_a_certificate_that_does_not_match_its_key_is_an_error_at_load_time(tmp_path, pki):
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write_web_config(tmp_path / "web.yml", {
            "tls_server_config": {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "client.key")}}))
    assert caught.value.problems[0].startswith("tls_server_config: the certificate, key or CA do not load")


def test_dbwatch_validate_reports_web_config_problems_under_server_web_config_file_without_the_hash(tmp_path,
                                                                                                   password_hash):
    broken = password_hash[:-3]  # a truncated hash: wrong, and still secret
    web = write_web_config(tmp_path / "web.yml", {"basic_auth_users": {"prometheus": broken}})
    config = tmp_path / "dbwatch.yaml"
    config.write_text(f"state_dir: {tmp_path}\nserver:\n  web_config_file: {web}\n")
    result = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "validate", "-c", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"server.web_config_file ({web}): basic_auth_users.prometheus: expected a bcrypt hash" in result.stderr
    assert broken not in result.stdout + result.stderr and broken[7:20] not in result.stderr
    with pytest.raises(ConfigError):
        parse_config(config.read_text())


# -- the listener, in-process: mutual TLS and reloading users ----------------------------------------------


async def start_server(web_config_path: Path) -> HttpServer:
    store = SnapshotStore()
    server = HttpServer(Exposition(store, version="test"), store, expected_jobs=lambda: [], targets=lambda: [])
    await server.start("127.0.0.1:0", load_web_config(web_config_path))
    return server


async def status(url: str, ssl_context: ssl.SSLContext, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=ssl_context, headers=headers or {},
                               timeout=aiohttp.ClientTimeout(total=10)) as response:
            return response.status


async def test_with_client_certificates_required_a_client_without_one_is_refused(tmp_path, pki):
    path = write_web_config(tmp_path / "web.yml", {"tls_server_config": {
        "cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key"),
        "client_ca_file": str(pki / "ca.crt"), "client_auth_type": "RequireAndVerifyClientCert"}})
    server = await start_server(path)
    try:
        url = f"https://{server.address}/metrics"
        anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        with pytest.raises(aiohttp.ClientError):
            await status(url, anonymous)
        with_cert = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        with_cert.load_cert_chain(pki / "client.crt", pki / "client.key")
        assert await status(url, with_cert) == 200
    finally:
        await server.stop()


async def test_reloading_the_web_config_swaps_the_users_without_a_restart(tmp_path, pki, password_hash):
    tls = {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key")}
    path = write_web_config(tmp_path / "web.yml", {"tls_server_config": tls,
                                                   "basic_auth_users": {"prometheus": password_hash}})
    server = await start_server(path)
    try:
        url = f"https://{server.address}/metrics"
        trust = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        assert await status(url, trust, basic("prometheus", PASSWORD)) == 200
        new_hash = bcrypt.hashpw(b"rotated", bcrypt.gensalt(rounds=4)).decode()
        write_web_config(path, {"tls_server_config": tls, "basic_auth_users": {"grafana-agent": new_hash}})
        server.reload_web_config(str(path))
        assert await status(url, trust, basic("prometheus", PASSWORD)) == 401  # remembered success is gone too
        assert await status(url, trust, basic("grafana-agent", "rotated")) == 200
        write_web_config(path, {"basic_auth_users": {"grafana-agent": new_hash}})
        with pytest.raises(ValueError, match="restart"):
            server.reload_web_config(str(path))  # TLS off by reload: refused, the listener keeps TLS
    finally:
        await server.stop()


# -- a real agent scraped by a real Prometheus over TLS with basic auth ----------------------------------------


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed (Debian package prometheus)")
def test_prometheus_scrapes_a_real_agent_over_tls_with_basic_auth_and_secrets_stay_out_of_logs(
        tmp_path, pki, password_hash):
    web = write_web_config(tmp_path / "web.yml", {
        "tls_server_config": {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key")},
        "basic_auth_users": {"prometheus": password_hash}})
    agent = AgentProcess(tmp_path, {
        "server": {"web_config_file": str(web)},
        "logging": {"level": "debug"},
        "targets": [{"name": "self", "engine": "host", "interval": "1s"}],
    }, ca_file=pki / "ca.crt", basic_auth=("prometheus", PASSWORD)).start()
    (tmp_path / "scrape-password").write_text(PASSWORD)
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{
            "job_name": "dbwatch", "scheme": "https", "honor_labels": True,
            "tls_config": {"ca_file": str(pki / "ca.crt")},
            "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "scrape-password")},
            "static_configs": [{"targets": [f"127.0.0.1:{agent.port}"]}]}],
    }))
    prom_log = tmp_path / "prometheus.log"
    with open(prom_log, "wb") as log:
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT)

    def prom(path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}{path}", timeout=5) as response:
            return json.load(response)

    def target_up() -> bool:
        assert prometheus.poll() is None, prom_log.read_text()
        try:
            active = prom("/api/v1/targets")["data"]["activeTargets"]
        except OSError:
            return False
        return bool(active) and active[0]["health"] == "up" and active[0]["scrapeUrl"].startswith("https://")

    try:
        wait_for(target_up, 60, "Prometheus to scrape the agent over TLS (health up)", interval=0.5)
        query = urllib.parse.urlencode({"query": 'dbwatch_target_up{target="self"}'})
        assert prom(f"/api/v1/query?{query}")["data"]["result"][0]["value"][1] == "1"
        assert agent.get("/healthz", check=False, headers={"Authorization": "Basic e30="}) == 200  # open path
        assert agent.get("/metrics", check=False, headers=basic("prometheus", "wrong")) == 401
        assert agent.get("/metrics", check=False, headers=basic("nobody", PASSWORD)) == 401
        assert agent.get("/api/v1/targets", check=False, headers={"Authorization": "Bearer x"}) == 401
        assert agent.get("/metrics", check=False) == 200
        # Plain HTTP to the TLS listener: no HTTP response at all.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/metrics", timeout=5).read()
        assert not isinstance(caught.value, urllib.error.HTTPError)
    finally:
        prometheus.terminate()
        prometheus.wait(15)
        assert agent.stop() == 0
    logs = agent.log() + prom_log.read_text(errors="replace")
    assert "running" in agent.log() and " DEBUG " in agent.log().upper(), "the agent logged at debug level"
    for secret in (PASSWORD, password_hash, password_hash[7:29], base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()):
        assert secret not in logs, "a secret reached a log"
