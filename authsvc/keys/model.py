"""What a signing key is: its public JWK and the timestamps of its life.

Only timestamps are stored; every state (pending, signing, retiring, gone)
is derived from them and the clock by ``timetable``, so every process and
every instance reaches the same answer from the key store alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["KeyRecord", "KeySetDoc"]


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

    def to_json(self) -> dict[str, Any]:
        return {
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
