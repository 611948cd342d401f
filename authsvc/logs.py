"""Logging: JSON audit lines, request ids, and silencing loggers that leak.

The audit trail is the ``authsvc.audit`` logger: every event is a record with
``extra={"event": ..., "user_id": ..., "client_id": ..., "sid": ...}``. When
the service runs, those records are written as one JSON object per line. No
event carries a secret: callers pass identifiers, never tokens or passwords.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "AUDIT_FIELDS",
    "AuditJsonFormatter",
    "RequestIdFilter",
    "SecretScrubber",
    "audit_logger",
    "configure_logging",
    "new_request_id",
    "quiet_leaky_loggers",
    "request_id",
    "scrub",
]

AUDIT_LOGGER = "authsvc.audit"

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("authsvc_request_id", default=None)

AUDIT_FIELDS = (
    "event",
    "user_id",
    "client_id",
    "sid",
    "kid",
    "alg",
    "token_use",
    "count",
    "changed",
    "overlap",
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Loggers that print SQL statements and their parameters (password and secret hashes,
# session ids, token bodies kept for the grace replay) or raw HTTP frames. SQLAlchemy
# echoes every statement when its logger is enabled for INFO, so WARNING is the floor.
_LEAKY = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool", "asyncpg", "psycopg", "hpack", "httpcore")


# Defence in depth for the plain log lines: nothing should log a token or a key, but if
# something does, the JWS (any compact JWS: header "eyJ...") and PEM bodies are cut out.
_JWS = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.DOTALL)


def scrub(text: str) -> str:
    """``text`` with compact JWS and PEM blocks replaced by a marker."""
    if "eyJ" in text:
        text = _JWS.sub("[token redacted]", text)
    if "-----BEGIN" in text:
        text = _PEM.sub("[key redacted]", text)
    return text


def new_request_id(offered: str | None) -> str:
    """The caller's X-Request-ID when it is a sane token, else a fresh one.

    A fresh id is this process's random prefix and a counter: unique, not
    secret (it is echoed to the caller), and without a ``getrandom`` call per
    request, which profiles of the token endpoint showed at several per cent.
    """
    if offered and _REQUEST_ID.match(offered):
        return offered
    return f"{_prefix}{next(_request_counter) & 0xFFFFFFFF:08x}"


_request_counter = itertools.count(1)
_prefix = secrets.token_hex(4)  # per process: drawn again in a forked child


def _new_prefix() -> None:
    global _prefix
    _prefix = secrets.token_hex(4)


os.register_at_fork(after_in_child=_new_prefix)


class RequestIdFilter(logging.Filter):
    """Stamps the current request id on a record when it is made, so it survives late formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            rid = request_id.get()
            if rid is not None:
                record.request_id = rid
        return True


class SecretScrubber(logging.Filter):
    """A handler filter that renders the message once, with tokens and PEM blocks cut out."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class AuditJsonFormatter(logging.Formatter):
    """One JSON object per line with the audit fields that are present."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": scrub(record.getMessage()),
        }
        for name in AUDIT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid is not None:
            line["request_id"] = rid
        return orjson.dumps(line).decode()  # compact UTF-8, as json.dumps(ensure_ascii=False)


def audit_logger() -> logging.Logger:
    """The ``authsvc.audit`` logger, at INFO unless set, stamping request ids (idempotent)."""
    audit = logging.getLogger(AUDIT_LOGGER)
    if audit.level == logging.NOTSET:
        audit.setLevel(logging.INFO)
    if not any(isinstance(f, RequestIdFilter) for f in audit.filters):
        audit.addFilter(RequestIdFilter())
    return audit


def quiet_leaky_loggers() -> None:
    """Keep libraries that log SQL parameters from doing so, whatever the root level."""
    for name in _LEAKY:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record, not at setup."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _not_audit(record: logging.LogRecord) -> bool:
    return not record.name.startswith(AUDIT_LOGGER)


def configure_logging(level: int = logging.INFO) -> None:
    """Plain lines on stderr, and audit events as JSON lines on stderr (``serve``, the CLI).

    The audit logger keeps propagating (so embedding code and tests still see
    its records); the plain handler skips them, so each event prints once.
    """
    quiet_leaky_loggers()
    # The logging HOWTO's "Optimization": no line here prints its caller's file and line, thread or
    # process, which every record looked up (an audit line a refresh; with the orjson formatter,
    # 2.6 % of a refresh's instructions, scripts/bench_instructions.py).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    if not any(isinstance(h, StderrHandler) for h in root.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(SecretScrubber())
        handler.addFilter(_not_audit)
        root.addHandler(handler)
    root.setLevel(level)
    audit = audit_logger()
    if not any(isinstance(h, StderrHandler) for h in audit.handlers):
        handler = StderrHandler()
        handler.setFormatter(AuditJsonFormatter())
        audit.addHandler(handler)
