"""The key timetable as data: each key's spans, the next change, the JWKS max-age it implies.

One reading for the admin API's ``GET /admin/keys`` and the console's timeline,
made from the same ``Timetable`` the rotation and the JWKS follow (so what the
operator sees is what the service does). Times are epoch seconds; a span that
has no end yet is ``None``. ``rotation_due``: when a scheduled rotation run first adds
the signing key's successor (``None`` while one is pending, or when nothing signs).
"""

from __future__ import annotations

import math
from typing import Any

from authsvc.keys.model import KeySetDoc
from authsvc.keys.plan import PROPAGATION
from authsvc.keys.timetable import Lifetimes, Timetable

__all__ = ["key_timeline"]


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def key_timeline(doc: KeySetDoc, lifetimes: Lifetimes, now: float) -> dict[str, Any]:
    table = Timetable(doc.keys, lifetimes)
    keys = []
    for record in sorted(doc.keys, key=lambda k: (k.sign_from, k.created_at)):
        signs_from = math.inf if record.standby else record.sign_from
        signs_until = table.sign_until(record.kid)
        leaves = table.unpublish_at(record.kid)
        if record.revoked_at is not None:
            signs_until = min(signs_until, record.revoked_at)
            leaves = record.revoked_at
        keys.append(
            {
                "kid": record.kid,
                "alg": record.alg,
                "state": table.state(record, now).value,
                "standby": record.standby,
                "published_at": record.created_at,
                "signs_from": _finite(signs_from),
                "signs_until": _finite(signs_until) if signs_until > -math.inf else None,
                "leaves_jwks_at": _finite(leaves),
                "revoked_at": record.revoked_at,
                "private_key_destroyed_at": record.private_deleted_at,
            }
        )
    current = table.signing(now)
    due = None
    if current is not None and (table.last() or current).kid == current.kid:
        due = current.sign_from + lifetimes.rotation_period - lifetimes.prepublish - PROPAGATION
    return {
        "now": now,
        "keys": keys,
        "next_change": _finite(table.next_change(now)),
        # What the JWKS answers now (CONTRACT.md: HTTP): caches come back by then.
        "jwks_max_age": table.jwks_max_age(now),
        "rotation_overdue": table.rotation_overdue(now),
        "rotation_due": due,
    }
