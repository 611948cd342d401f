"""The soak's settings: a compressed key timetable, the client rates, the fault kinds.

Every ``AUTHSVC_*`` name here is a setting of CONTRACT.md (an unknown one stops authsvc).
The timetable is chosen so that many rotations happen in a short run while the
contract's own guarantee still holds for every verifier: a key is published
``KEY_PREPUBLISH`` (8 s) before it signs, caches live at most ``JWKS_MAX_AGE`` (4 s), and
the skewed instance is at most ``SKEW`` (2 s) ahead, so 8 - 2 >= 4 and no verifier that
honours the cache headers ever meets an unknown kid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FAULT_KINDS", "SoakConfig"]

FAULT_KINDS = (
    "worker_kill",
    "proxy_reload",
    "redis_restart",
    "key_revoke",
    "pg_restart",
    "clock_skew",
    "instance_kill",
)


@dataclass(frozen=True)
class SoakConfig:
    minutes: float
    out_dir: str
    seed: int = 19
    access_token_ttl: int = 30
    refresh_reuse_grace: int = 5
    key_rotation_period: int = 15
    key_prepublish: int = 8
    jwks_max_age: int = 4
    clock_skew: int = 5  # AUTHSVC_CLOCK_SKEW: the leeway; the fault stays within it
    skew: float = 2.0  # seconds the skewed instance runs ahead during the fault
    chains: int = 10  # refresh chains running at once
    sign_ins: int = 2  # browser sign-in chains running at once
    dpop_chains: int = 2  # DPoP-bound refresh chains running at once
    client_credentials_every: float = 1.5
    rotate_every: float = 3.0  # each of the two rotate_keys.py "hosts"
    sample_every: float = 2.0
    warmup: float = 20.0  # no faults yet
    cooldown: float = 30.0  # no faults any more: everything recovers, verifications finish
    users: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    def authsvc_env(self) -> dict[str, str]:
        return {
            "AUTHSVC_KEY_STORE": "database",
            "AUTHSVC_KEY_PASSPHRASE": "soak passphrase, not a secret",
            "AUTHSVC_SIGNING_ALG": "EdDSA",
            "AUTHSVC_ACCESS_TOKEN_TTL": str(self.access_token_ttl),
            "AUTHSVC_REFRESH_REUSE_GRACE": str(self.refresh_reuse_grace),
            "AUTHSVC_KEY_ROTATION_PERIOD": str(self.key_rotation_period),
            "AUTHSVC_KEY_PREPUBLISH": str(self.key_prepublish),
            "AUTHSVC_JWKS_MAX_AGE": str(self.jwks_max_age),
            "AUTHSVC_CLOCK_SKEW": str(self.clock_skew),
            # Cheap hashing and wide login limits: the soak is about faults, not about
            # the OWASP cost or the limiter (both have their own tests); 2 shared cores.
            "AUTHSVC_ARGON2_MEMORY_KIB": "1024",
            "AUTHSVC_ARGON2_TIME_COST": "1",
            "AUTHSVC_LOGIN_MAX_PER_USER": "100000",
            "AUTHSVC_LOGIN_MAX_PER_ADDRESS": "100000",
            "AUTHSVC_TRUSTED_PROXIES": "127.0.0.1",
            **self.extra_env,
        }
