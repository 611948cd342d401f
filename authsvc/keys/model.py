"""What a signing key is: its public JWK and the timestamps of its life.

Only timestamps are stored; every state (pending, signing, retiring, gone)
is derived from them and the clock by ``timetable``, so every process and
every instance reaches the same answer from the key store alone. Two facts
are not times: ``standby`` (published, no signing slot until a rotation or a
revocation promotes it) and ``encryption`` (how the private half is stored,
so a writer knows what to re-encrypt; ``None`` in manifests written before it
was recorded).

Rolling upgrades: the manifest stays ``"version": 1`` and ``sign_from`` stays
a float, so code that knows neither field still reads it. A standby is
written with ``sign_from = STANDBY_SIGN_FROM`` (the last second of 9999):
such code sees a successor that never starts signing, which keeps the
current key signing and the standby published, as intended.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["STANDBY_SIGN_FROM", "KeyRecord", "KeySetDoc"]

STANDBY_SIGN_FROM = 253_402_300_799.0  # 9999-12-31T23:59:59Z: "never", as a float old readers accept


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key pair's metadata. The private half lives beside it in the store."""

    kid: str
    alg: str
    public_jwk: dict[str, Any]
    created_at: float
    sign_from: float
    revoked_at: float | None = None
    private_deleted_at: float | None = None
    standby: bool = False
    encryption: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "standby": self.standby,
            "encryption": self.encryption,
            "kid": self.kid,
            "alg": self.alg,
            "public_jwk": self.public_jwk,
            "created_at": self.created_at,
            "sign_from": self.sign_from,
            "revoked_at": self.revoked_at,
            "private_deleted_at": self.private_deleted_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyRecord:
        return cls(
            kid=str(data["kid"]),
            alg=str(data["alg"]),
            public_jwk=dict(data["public_jwk"]),
            created_at=float(data["created_at"]),
            sign_from=float(data["sign_from"]),
            revoked_at=None if data.get("revoked_at") is None else float(data["revoked_at"]),
            private_deleted_at=(
                None if data.get("private_deleted_at") is None else float(data["private_deleted_at"])
            ),
            standby=data.get("standby") is True,
            encryption=None if data.get("encryption") is None else str(data["encryption"]),
        )

    def with_changes(self, **changes: Any) -> KeyRecord:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class KeySetDoc:
    """The whole key set as stored: one document, replaced atomically."""

    keys: tuple[KeyRecord, ...] = field(default_factory=tuple)
    generation: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "generation": self.generation, "keys": [k.to_json() for k in self.keys]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeySetDoc:
        if data.get("version") != 1:
            raise ValueError("unsupported key set version")
        return cls(
            keys=tuple(KeyRecord.from_json(item) for item in data.get("keys", [])),
            generation=int(data.get("generation", 0)),
        )

    def find(self, kid: str) -> KeyRecord | None:
        for record in self.keys:
            if record.kid == kid:
                return record
        return None
