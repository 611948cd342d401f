"""Logging: JSON audit lines, request ids, and silencing loggers that leak.

The audit trail is the ``authsvc.audit`` logger: every event is a record with
``extra={"event": ..., "user_id": ..., "client_id": ..., "sid": ...}``. When
the service runs, those records are written as one JSON object per line. No
event carries a secret: callers pass identifiers, never tokens or passwords.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from datetime import UTC, datetime

__all__ = [
    "AUDIT_FIELDS",
    "AuditJsonFormatter",
    "configure_logging",
    "new_request_id",
    "quiet_leaky_loggers",
    "request_id",
]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("authsvc_request_id", default=None)

AUDIT_FIELDS = ("event", "user_id", "client_id", "sid", "kid", "alg", "token_use", "count")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Loggers that print SQL parameters (token bodies, hashes) at DEBUG.
_LEAKY = ("aiosqlite", "sqlalchemy.engine", "asyncpg", "psycopg", "hpack", "httpcore")


def new_request_id(offered: str | None) -> str:
    """The caller's X-Request-ID when it is a sane token, else a fresh one."""
    if offered and _REQUEST_ID.match(offered):
        return offered
    return secrets.token_hex(8)


class AuditJsonFormatter(logging.Formatter):
    """One JSON object per line with the audit fields that are present."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        for name in AUDIT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        return json.dumps(line, separators=(",", ":"), ensure_ascii=False)


def quiet_leaky_loggers() -> None:
    """Keep libraries that log SQL parameters from doing so, whatever the root level."""
    for name in _LEAKY:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


def configure_logging(level: int = logging.INFO) -> None:
    """For ``serve``: plain lines on stderr, audit events as JSON lines on stderr."""
    quiet_leaky_loggers()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    audit = logging.getLogger("authsvc.audit")
    audit.setLevel(logging.INFO)
    audit.propagate = False
    if not audit.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(AuditJsonFormatter())
        audit.addHandler(handler)
