"""``authsvc serve``'s web server: a listening socket bound here, handed to uvicorn.

The socket is bound and put in the listening state before the database, the
keys or uvicorn are touched, so a busy port or a bad host is one line and
exit 1 — and there is no check-then-bind race: the socket that was bound is
the one uvicorn serves on, in one process (``Server.run(sockets=...)``) or in
``--workers N`` (``Multiprocess``, as uvicorn's own ``run()`` does).

uvicorn's proxy-header handling is off (CONTRACT "Trust rules"): with it on,
uvicorn rewrites the client address from ``X-Forwarded-For`` for any peer in
its ``forwarded_allow_ips`` (127.0.0.1 by default), so a local caller could
pick its own address. Only ``AUTHSVC_TRUSTED_PROXIES`` decides whose header
counts.
"""

from __future__ import annotations

import socket
from typing import Any

from authsvc.errors import AuthsvcError

__all__ = ["ListenError", "address", "listen", "run_uvicorn"]

BACKLOG = 2048  # uvicorn's default
# Seconds an idle keep-alive connection stays open (uvicorn's default, said out loud): a
# proxy keeping upstream connections must close them first (deploy/nginx sets 3 s), or it
# may send a request down a connection this server is closing that instant — a reset, a
# 502 for a POST nginx must not retry, and with max_fails=1 an instance taken out of service.
KEEP_ALIVE = 5
SERVED_APP = "authsvc.app:create_served_app"  # what each of N workers imports


class ListenError(AuthsvcError):
    """The address cannot be listened on; ``str()`` is the one line ``serve`` prints."""


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address(sock: socket.socket) -> str:
    """``host:port`` (``[host]:port`` for IPv6) that ``sock`` listens on."""
    host, port = sock.getsockname()[:2]
    return _where(host, port)


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = _where(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listening at once closes the race: two bound but idle SO_REUSEADDR
        # sockets may share a port on Linux; a listening one may not.
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {where}: {_reason(exc)}") from None
    sock.set_inheritable(True)  # the workers of --workers N inherit it
    return sock


def run_uvicorn(
    sock: socket.socket, *, app: Any = None, workers: int = 1, admin: socket.socket | None = None
) -> bool:
    """Serve on ``sock`` until stopped: ``app`` in this process, or N workers that build their own.

    Returns whether the server started (False: its startup failed and was logged).
    """
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    options: dict[str, Any] = {
        "log_level": "info",
        "access_log": False,  # a line per request costs more than a JWKS answer; /metrics counts them
        "server_header": False,
        "timeout_keep_alive": KEEP_ALIVE,
        "proxy_headers": False,  # only AUTHSVC_TRUSTED_PROXIES decides (see the module docstring)
    }
    try:
        if workers > 1:
            config = uvicorn.Config(SERVED_APP, factory=True, workers=workers, **options)
            supervisor = Multiprocess(config, sockets=[sock, *([admin] if admin else [])])
            supervisor.run()  # returns on a signal, or when a worker fails to start
            return all(process.exitcode != STARTUP_FAILURE for process in supervisor.processes)
        server = uvicorn.Server(uvicorn.Config(app, **options))
        server.run(sockets=[sock, *([admin] if admin else [])])
        return server.started
    except KeyboardInterrupt:
        return True
    finally:
        sock.close()
        if admin is not None:
            admin.close()


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    text = exc.strerror or type(exc).__name__
    return text[:1].lower() + text[1:]
