"""The JWKS document a server publishes: body, ETag and a max-age that respects the timetable.

The body is rebuilt only when the key set changes, or every request while the
next scheduled change is nearer than ``JWKS_MAX_AGE`` (the max-age then
counts down to it, so no cache holds a set past the moment it changes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from authsvc.keys.ring import KeyRing, KeySet

__all__ = ["JwksDocument", "JwksPublisher"]


@dataclass(frozen=True, slots=True)
class JwksDocument:
    body: bytes
    etag: str
    max_age: int
    valid_until: float  # recompute after this instant


class JwksPublisher:
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._cached: tuple[KeySet, JwksDocument] | None = None

    def document(self) -> JwksDocument:
        """The current document (KeyStoreError once the store has been unreadable too long)."""
        keys = self.ring.keys
        now = self.ring.clock.now()
        cached = self._cached
        if cached is None or cached[0] is not keys or now >= cached[1].valid_until:
            cached = self._cached = (keys, self._build(keys, now))
        return cached[1]

    def _build(self, keys: KeySet, now: float) -> JwksDocument:
        timetable = keys.timetable
        body_keys = [record.public_jwk for record in timetable.published(now)]
        body = json.dumps({"keys": body_keys}, separators=(",", ":"), sort_keys=True).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        far = timetable.next_jwks_change(now) - now > self.ring.lifetimes.jwks_max_age + 1
        valid_until = now + 1.0 if far else now
        return JwksDocument(body, etag, timetable.jwks_max_age(now), valid_until)
