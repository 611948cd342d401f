"""Debian's nginx in front of the two instances, on a free loopback port.

The proxy settings are the deployment recipe's (``deploy/nginx/snippets/authsvc-proxy.conf``,
included verbatim): a POST is never retried on the other instance once sent, so a
killed instance costs the requests it held and nothing more. ``reload`` is the fault
(``nginx -s reload``: new workers, old ones finish their requests).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from soakkit.services import _wait_port, free_port

__all__ = ["Nginx"]

SNIPPET = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "snippets" / "authsvc-proxy.conf"

_CONF = """\
{user}daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream authsvc {{
        server 127.0.0.1:{a} max_fails=1 fail_timeout=3s;
        server 127.0.0.1:{b} max_fails=1 fail_timeout=3s;
        keepalive 16;
        keepalive_timeout 3s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include {snippet};
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, root: Path, upstreams: tuple[int, int]) -> None:
        self.dir = root / "nginx"
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.conf = self.dir / "nginx.conf"
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            _CONF.format(
                user=user, dir=self.dir, a=upstreams[0], b=upstreams[1], port=self.port, snippet=SNIPPET
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _cmd(self, *extra: str) -> list[str]:
        return [
            self.binary,
            "-e",
            str(self.dir / "error.log"),
            "-p",
            f"{self.dir}/",
            "-c",
            str(self.conf),
            *extra,
        ]

    def start(self) -> None:
        subprocess.run(self._cmd("-t", "-q"), check=True)
        with (self.dir / "nginx.out").open("ab") as out:
            self.proc = subprocess.Popen(self._cmd(), stdout=out, stderr=subprocess.STDOUT)
        _wait_port(self.port, 15)

    def reload(self) -> None:
        """The fault: ``nginx -s reload``, then wait for the old worker to be replaced."""
        before = set(self.worker_pids())
        subprocess.run(self._cmd("-s", "reload"), check=True, capture_output=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (set(self.worker_pids()) - before):
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        from soakkit.procs import children

        return children(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
