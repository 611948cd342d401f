"""What a run is asked to do: the fixed figures, the two profiles and the command-line options."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALGS",
    "ANCHORS_FILE",
    "ANCHOR_PEER",
    "ARGON2",
    "AUTH_CODE_TTL",
    "BENCH_SCRIPT",
    "DPOP_PEER_SKEW",
    "DPOP_SKEW",
    "FULL",
    "PASSWORD",
    "PEER_DIR",
    "PEER_REDIS_PREFIX",
    "PEER_REDIS_URL",
    "ROOT",
    "RUN_BUDGET_S",
    "SCOPES",
    "SMOKE",
    "Options",
    "Profile",
    "profile_for",
]

ROOT = Path(__file__).resolve().parents[2]
PEER_DIR = ROOT / "scripts" / "bench_peer"
#: The entry point; the ceiling processes are started through it (``bench.py _static|_bare``).
BENCH_SCRIPT = ROOT / "scripts" / "bench.py"
ANCHORS_FILE = "/work/shared/ANCHORS.md (2026-11-30)"
#: The peer's Redis adapter (BENCH_ADAPTER=redis): a database of its own by default (the tests use 0),
#: and every key under a prefix of the run's, which the peer deletes at its start and at its exit.
PEER_REDIS_URL = "redis://127.0.0.1:6379/13"
PEER_REDIS_PREFIX = "authsvc-bench-peer:"

# Password hashing as shipped: the OWASP minimum for argon2id (the settings' defaults).
ARGON2 = {"memory_kib": 19456, "time_cost": 2, "parallelism": 1}
#: Seconds an authorization code lives in the bench's authsvc servers (AUTHSVC_AUTH_CODE_TTL; default 60).
AUTH_CODE_TTL = 600
#: Seconds a DPoP proof's iat may be off at authsvc (AUTHSVC_CLOCK_SKEW, left at its default) and at the
#: peer (node-oidc-provider's fixed window without nonces): proofs are signed before a run.
DPOP_SKEW = 60
DPOP_PEER_SKEW = 300
PASSWORD = "correct horse battery staple"  # over AUTHSVC_PASSWORD_MIN_LENGTH (8)
SCOPES = "read write"
ALGS = ("RS256", "EdDSA")
#: The whole full run should end within this many seconds (the issue asks under 5 minutes).
RUN_BUDGET_S = 280

# Figures from ANCHORS.md: a reference when the peer is not measured in this run.
ANCHOR_PEER = {
    "jwks": {"RS256": 14000.0, "EdDSA": 14000.0},
    "client_credentials": {"RS256": 1910.0, "EdDSA": 3620.0},
    "refresh": {"RS256": 3230.0, "EdDSA": 3230.0},
}


@dataclass(frozen=True)
class Profile:
    duration: float  # seconds per load run (wrk rounds up to whole seconds)
    connections: int
    crypto_seconds: float
    growth_small: int
    growth_big: int
    memory_small: int
    memory_big: int
    logins_concurrent: int = 4
    warmup_requests: int = 60


FULL = Profile(
    duration=3,
    connections=32,
    crypto_seconds=1.0,
    growth_small=10_000,
    growth_big=1_000_000,
    memory_small=1_000,
    memory_big=100_000,
)
SMOKE = Profile(
    duration=0.3,
    connections=4,
    crypto_seconds=0.05,
    growth_small=100,
    growth_big=1_000,
    memory_small=20,
    memory_big=200,
    warmup_requests=5,
)


@dataclass(frozen=True)
class Options:
    """The command line (``benchkit.cli.parse_args``); ``None`` means the profile's default."""

    smoke: bool = False
    out: Path | None = None
    database_url: str | None = None
    # A PostgreSQL scratch database for the extra authsvc server of the ALG.pg.* rows (None: not measured).
    postgres_url: str | None = None
    # The peer's Redis (node-oidc-provider with its Redis adapter; None: --no-redis).
    redis_url: str | None = PEER_REDIS_URL
    generator: str = "auto"  # auto | wrk | httpx
    duration: float | None = None
    connections: int | None = None
    algs: tuple[str, ...] = ALGS
    growth_rows: int | None = None
    growth_alg: str = "EdDSA"
    memory_refreshes: int | None = None
    memory_seconds: int | None = None
    no_peer: bool = False
    keep: bool = False


def profile_for(options: Options) -> Profile:
    """The smoke or full profile, with --duration and --connections applied."""
    base = SMOKE if options.smoke else FULL
    return dataclasses.replace(
        base,
        duration=options.duration or base.duration,
        connections=options.connections or base.connections,
    )
