"""The deployment recipe in ``deploy/``, run where it can be.

- The systemd units pass ``systemd-analyze verify`` (offline, in a scratch
  root holding the system's own units and stand-ins for the executables) with
  no warning, and carry the hardening the README promises.
- The nginx site, rendered with free ports and a test certificate but
  otherwise as shipped (its proxy snippet verbatim), runs under Debian's nginx
  in front of two ``authsvc serve`` instances started as ``authsvc@.service``
  starts them (``--workers 2``), on one SQLite database, with the settings of
  ``deploy/authsvc.env.example`` (``AUTHSVC_TRUSTED_PROXIES`` among them). The
  login limits count the address nginx appends, whatever ``X-Forwarded-For``
  the client sends, and a burst from one address is limited across both
  instances.

Clients connect from distinct loopback addresses (127.0.0.2, ...): nginx itself
reaches authsvc from 127.0.0.1, the one trusted proxy.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import authsvc_command, free_port, server_env
from tests.trust_support import assert_limited, brief, password_form

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = DEPLOY / "systemd"
SERVE_UNIT = UNITS / "authsvc@.service"
ENV_EXAMPLE = DEPLOY / "authsvc.env.example"
SITE = DEPLOY / "nginx" / "sites-available" / "authsvc"
SNIPPET = DEPLOY / "nginx" / "snippets" / "authsvc-proxy.conf"
LIMIT = 3
BURST = 20


# --- the units ---------------------------------------------------------------------------------
def _directives(unit: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, values in order (comments and sections left out)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_nginx_closes_idle_upstream_connections_before_authsvc_does() -> None:
    """Found by the soak: a reset on a keep-alive connection authsvc was closing, on each
    instance, took both out of nginx's service (max_fails=1) for seconds of 502s."""
    from authsvc.serving import KEEP_ALIVE

    upstream = SITE.read_text().split("upstream authsvc {", 1)[1].split("}", 1)[0]
    (timeout,) = re.findall(r"^\s*keepalive_timeout\s+(\d+)s;", upstream, re.MULTILINE)
    assert int(timeout) <= KEEP_ALIVE - 2, "nginx must give up an idle connection well before authsvc"


def _serve_argv(port: int) -> list[str]:
    """``authsvc@<port>.service``'s command line, from ``serve`` on."""
    (exec_start,) = _directives(SERVE_UNIT)["ExecStart"]
    argv = shlex.split(exec_start.replace("%i", str(port)))
    assert Path(argv[0]).name == "authsvc", argv
    return argv[1:]


@pytest.mark.parametrize("unit", ["authsvc@.service", "authsvc-rotate.service", "authsvc-prune.service"])
def test_units_are_hardened_and_keep_state_in_their_state_directory(unit: str) -> None:
    d = _directives(UNITS / unit)
    assert d["User"] == ["authsvc"]
    assert d["EnvironmentFile"] == ["/etc/authsvc/authsvc.env"]
    assert d["StateDirectory"] == ["authsvc"]
    assert d["StateDirectoryMode"] == ["0700"]
    assert d["WorkingDirectory"] == ["/var/lib/authsvc"]  # no stray .env is read from elsewhere
    assert d["UMask"] == ["0077"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert d.get(key) == [value], (unit, key)
    # The example settings keep the database and the keys in that state directory.
    settings = _env_example()
    assert settings["AUTHSVC_DATABASE_URL"] == "sqlite:////var/lib/authsvc/authsvc.db"
    assert settings["AUTHSVC_KEYS_DIR"] == "/var/lib/authsvc/keys"


def test_serve_unit_runs_workers_and_the_timer_runs_the_rotation_every_minute() -> None:
    argv = _serve_argv(8001)
    assert argv[:1] == ["serve"]
    assert argv[argv.index("--port") + 1] == "8001"
    assert int(argv[argv.index("--workers") + 1]) >= 2
    assert _directives(UNITS / "authsvc-rotate.timer")["OnCalendar"] == ["minutely"]
    rotate = _directives(UNITS / "authsvc-rotate.service")
    assert rotate["Type"] == ["oneshot"]
    assert rotate["ExecStart"][0].endswith("scripts/rotate_keys.py")


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    system_units = Path("/usr/lib/systemd/system")
    if tool is None or not (system_units / "sysinit.target").is_file():
        pytest.skip("systemd-analyze or the system's units are not installed: the units are not verified")
    root = tmp_path / "root"
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    installed = root / "etc/systemd/system"
    shutil.copytree(UNITS, installed)
    # Stand-ins for the executables the units name (verify checks that they exist).
    for unit in installed.glob("*.service"):
        for command in _directives(unit)["ExecStart"]:
            executable = root / shlex.split(command)[0].lstrip("/")
            executable.parent.mkdir(parents=True, exist_ok=True)
            executable.write_text("#!/bin/sh\n")
            executable.chmod(0o755)
    names = ["authsvc@8001.service", *sorted(p.name for p in installed.iterdir() if "@" not in p.name)]
    result = subprocess.run(
        [tool, "verify", "--man=no", f"--root={root}", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == result.stderr.strip() == "", result.stdout + result.stderr


# --- nginx in front of two instances -------------------------------------------------------------
def _env_example() -> dict[str, str]:
    settings = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
    if found:
        return found
    reason = "nginx not found: the proxy test needs Debian's nginx package"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: .ci/run installs it, so this is a failure)")
    pytest.skip(reason)


def _certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for auth.example.com and 127.0.0.1: (ca, chain, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("auth.example.com"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authsvc test CA")])
    ca = build("authsvc test CA", ca_key, ca_name, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build("auth.example.com", key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "fullchain.pem", directory / "privkey.pem"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def _render_site(upstreams: tuple[int, int], http_port: int, https_port: int, chain: Path, key: Path) -> str:
    """The shipped site with the ports and certificate paths of this test, nothing else changed."""
    site = SITE.read_text()
    replacements = [
        ("server 127.0.0.1:8001 ", f"server 127.0.0.1:{upstreams[0]} "),
        ("server 127.0.0.1:8002 ", f"server 127.0.0.1:{upstreams[1]} "),
        ("    listen [::]:80;\n", ""),  # IPv6 may be off in a sandbox
        ("    listen [::]:443 ssl;\n", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("/etc/letsencrypt/live/auth.example.com/fullchain.pem", str(chain)),
        ("/etc/letsencrypt/live/auth.example.com/privkey.pem", str(key)),
    ]
    for old, new in replacements:
        assert site.count(old) == 1, f"deploy/nginx changed: {old!r} is not there once"
        site = site.replace(old, new)
    return site


_MAIN_CONF = """\
{user}daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 512; }}
http {{
    log_format upstream '$remote_addr "$http_x_forwarded_for" $status $upstream_addr';
    access_log {tmp}/access.log upstream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include sites-enabled/authsvc;
}}
"""


@dataclass
class Proxy:
    https: str
    http: str
    ca: Path
    access_log: Path
    upstreams: tuple[int, int]

    def client(self, source: str) -> httpx.AsyncClient:
        """A client connecting to nginx from ``source`` (a loopback address)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        transport = httpx.AsyncHTTPTransport(local_address=source, verify=context)
        return httpx.AsyncClient(base_url=self.https, transport=transport, timeout=60)

    def upstreams_used_by(self, source: str) -> set[str]:
        ports = set()
        for line in self.access_log.read_text().splitlines():
            if line.startswith(source + " "):
                ports.update(re.findall(r"127\.0\.0\.1:(\d+)", line.rsplit('"', 1)[1]))
        return ports


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, **client: object) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited: {log.read_text(errors='replace')}")
        try:
            if httpx.get(url, timeout=2, **client).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer: {log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    nginx = _nginx()
    tmp = tmp_path_factory.mktemp("deploy")
    example = {k.removeprefix("AUTHSVC_").lower(): v for k, v in _env_example().items()}
    for local in ("database_url", "keys_dir"):  # /var/lib/authsvc here is the test's directory
        example.pop(local)
    assert example["trusted_proxies"] == "127.0.0.1/32"
    env = server_env(tmp, **example, login_max_per_address=str(LIMIT), login_max_per_user="100000")
    processes: list[subprocess.Popen[bytes]] = []  # the two instances, then nginx
    try:
        upstreams = (free_port(), free_port())
        for port in upstreams:  # one after the other: the first creates the database and the keys
            log = tmp / f"authsvc-{port}.log"
            with log.open("ab") as out:
                processes.append(
                    subprocess.Popen(
                        [*authsvc_command(), *_serve_argv(port)],
                        env=env,
                        cwd=tmp,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            _wait(f"http://127.0.0.1:{port}/healthz", processes[-1], log)
        ca, chain, key = _certificate(tmp)
        http_port, https_port = free_port(), free_port()
        (tmp / "snippets").mkdir()
        shutil.copy(SNIPPET, tmp / "snippets" / SNIPPET.name)  # verbatim
        (tmp / "sites-enabled").mkdir()
        (tmp / "sites-enabled" / "authsvc").write_text(
            _render_site(upstreams, http_port, https_port, chain, key)
        )
        user = "user root;\n" if os.geteuid() == 0 else ""  # else nginx's workers would be nobody
        (tmp / "nginx.conf").write_text(_MAIN_CONF.format(tmp=tmp, user=user))
        error_log = tmp / "error.log"
        check = subprocess.run(
            [nginx, "-t", "-q", "-e", str(error_log), "-p", f"{tmp}/", "-c", str(tmp / "nginx.conf")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stderr + error_log.read_text(errors="replace")
        with (tmp / "nginx.out").open("ab") as out:
            processes.append(
                subprocess.Popen(
                    [nginx, "-e", str(error_log), "-p", f"{tmp}/", "-c", str(tmp / "nginx.conf")],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        https = f"https://127.0.0.1:{https_port}"
        context = ssl.create_default_context(cafile=str(ca))
        _wait(https + "/healthz", processes[-1], error_log, verify=context)
        yield Proxy(https, f"http://127.0.0.1:{http_port}", ca, tmp / "access.log", upstreams)
    finally:
        if len(processes) == 3:
            _stop(processes.pop(), signal.SIGQUIT)  # nginx's graceful stop
        for process in processes:
            _stop(process)


async def _wrong(client: httpx.AsyncClient, forged: str | None, name: str) -> httpx.Response:
    headers = {"X-Forwarded-For": forged} if forged else {}
    return await client.post("/token", data=password_form(name, "wrong-password"), headers=headers)


@pytest.mark.slow
async def test_tls_is_terminated_and_plain_http_only_redirects(proxy: Proxy) -> None:
    async with proxy.client("127.0.0.2") as client:
        metadata = await client.get("/.well-known/openid-configuration")
        assert metadata.status_code == 200, metadata.text
        assert metadata.json()["issuer"] == _env_example()["AUTHSVC_ISSUER"]
        assert metadata.headers["strict-transport-security"].startswith("max-age=")
    async with httpx.AsyncClient(base_url=proxy.http, follow_redirects=False) as plain:
        answer = await plain.post("/token", data=password_form("alice", "password"))
        assert answer.status_code == 301
        assert answer.headers["location"].startswith("https://")


@pytest.mark.slow
async def test_login_limits_count_the_address_nginx_appends_not_what_the_client_forges(
    proxy: Proxy,
) -> None:
    async with proxy.client("127.0.0.2") as attacker, proxy.client("127.0.0.3") as bystander:
        for i in range(LIMIT):
            answer = await _wrong(attacker, f"203.0.113.{i + 1}", f"forger{i}")
            assert answer.status_code == 400, brief(answer)
        # A new forged address every time: still the same client, as nginx saw it.
        for forged in ("203.0.113.200", "198.51.100.7, 203.0.113.9", None):
            limited = await _wrong(attacker, forged, "forger-next")
            assert limited.status_code == 429, (
                f"X-Forwarded-For {forged!r} evaded the limit: {brief(limited)}"
            )
            assert_limited(limited)
        # Another client claiming the attacker's forged addresses is not limited by them.
        answer = await _wrong(bystander, "203.0.113.1", "bystander")
        assert answer.status_code == 400, brief(answer)
    assert proxy.upstreams_used_by("127.0.0.2") == {str(port) for port in proxy.upstreams}


@pytest.mark.slow
async def test_a_burst_from_one_address_is_limited_across_both_instances(proxy: Proxy) -> None:
    source = "127.0.0.4"
    gate = asyncio.Event()
    ready = 0

    async def one(i: int) -> httpx.Response:
        nonlocal ready
        async with proxy.client(source) as client:
            await client.get("/healthz")  # the connection is open before the gate
            ready += 1
            if ready == BURST:
                gate.set()
            await gate.wait()
            return await _wrong(client, f"192.0.2.{i + 1}", f"spray{i}")

    answers = await asyncio.gather(*(one(i) for i in range(BURST)))
    checked = 0
    for answer in answers:
        if answer.status_code == 429:
            assert_limited(answer)
        else:
            assert answer.status_code == 400, brief(answer)
            assert answer.json()["error"] == "invalid_grant"
            checked += 1
    assert 1 <= checked <= LIMIT, f"{checked} of {BURST} passwords were checked (limit {LIMIT})"
    assert proxy.upstreams_used_by(source) == {str(port) for port in proxy.upstreams}
