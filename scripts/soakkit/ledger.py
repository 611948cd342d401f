"""The ledger: every token issued and every answer of a soak run, and the rules it must pass.

Pure data and arithmetic, no I/O, so that ``tests/test_soak_ledger.py`` can feed it
synthetic events and watch each rule fail. Times are wall-clock epoch seconds as the
soak saw them (``t0`` a request was sent, ``t1`` its answer arrived).

The rules (``Ledger.check``), each a cause in ``Verdict.failures``:

- ``verifier-refused``: an offline verifier refused an access token it should accept
  (issued 200, not within ``skew_margin`` of its ``exp``, its kid not revoked by the soak,
  and not for want of a JWKS during a fault);
  ``unknown-kid`` is the same for ``reason`` naming an unknown key, counted apart.
- ``refresh-accepted-twice``: a refresh token accepted again later than the grace allows
  (the first acceptance + grace + ``skew_margin``), or a replay answered with another body.
- ``grace-replay-refused``: a deliberate replay inside the grace was refused.
- ``reuse-not-revoked``: after a detected reuse the successor still worked.
- ``chain-broken``: a refresh refused without a fault to name (a transport error or 5xx
  of the same token overlapping a fault window, or its key revoked by the soak).
- ``code-accepted-twice``: an authorization code answered with tokens more than once.
- ``revocation-late``: a revoked token accepted at introspection or ``/token`` after the
  revocation, or at ``/users/me`` more than 1 s after it (revoked at ``/revoke``, by a
  logout, or with its family when its code was replayed); a token of a revoked key
  accepted anywhere more than 1 s after ``keys revoke`` returned.
- ``5xx-outside-faults``: a 5xx or connection error not overlapping a fault window
  (fault start to end + ``recovery_limit``).
- ``unexpected-answer``: any other answer the client did not expect (a 401 for a valid
  token...), unless the token's key was revoked by the soak.
- ``slow-recovery``: the first success after a fault ended came later than ``recovery_limit``.
- ``memory-growth`` / ``fd-growth``: see ``resource_failures``.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Answer",
    "CodeRedemption",
    "Failure",
    "Fault",
    "Issued",
    "Ledger",
    "Probe",
    "RefreshAttempt",
    "Sample",
    "Verdict",
    "Verification",
]

# A probe at each route counts as "working" after the revocation only past these delays.
# A token revoked at /revoke: decisions at /token and /introspect read the database (at
# once), /users/me may keep an answer up to 1 s (CONTRACT.md "Token rules"). A token whose
# key was revoked (``keys revoke``): every server sees a key-store change within 1 s
# (CONTRACT.md "Keys"), at every route alike.
REVOKE_DEADLINES = {"introspect": 0.0, "token": 0.0, "users_me": 1.0}
KEY_REVOKE_DEADLINE = 1.0


@dataclass(frozen=True, slots=True)
class Answer:
    """One request and its answer; ``status`` None is a connection error or timeout."""

    kind: str
    t0: float
    t1: float
    status: int | None
    expected: bool = True
    kid: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault window: from the first act of the injector to the end of its last act."""

    kind: str
    start: float
    end: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Issued:
    """An access token answered 200 (``token_id`` is a digest, never the token)."""

    token_id: str
    kind: str
    t: float
    exp: float
    kid: str


@dataclass(frozen=True, slots=True)
class Verification:
    """One offline verification of an issued access token."""

    token_id: str
    verifier: str
    t: float
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RefreshAttempt:
    """One presentation of a refresh token at ``/token``.

    ``deliberate``: "" a normal step or a retry after a lost answer; "grace" a replay
    inside the grace; "late" a replay after it; "after_reuse" the successor presented
    after a late replay was refused.
    """

    chain: str
    token_id: str
    kid: str
    t0: float
    t1: float
    status: int | None
    body_hash: str | None = None
    deliberate: str = ""


@dataclass(frozen=True, slots=True)
class CodeRedemption:
    """One presentation of an authorization code at ``/token`` (``code_id`` a digest).

    ``deliberate``: "" the sign-in's own redemption; "replay" the same code again later.
    """

    chain: str
    code_id: str
    t0: float
    t1: float
    status: int | None
    deliberate: str = ""


@dataclass(frozen=True, slots=True)
class Probe:
    """A revoked token presented again at one of authsvc's routes."""

    token_id: str
    revoked_at: float
    route: str
    t0: float
    accepted: bool | None  # None: no answer (a fault)
    # What revoked it: "token" (/revoke), "logout" (its browser session ended), "code_replay"
    # (its family, when the code that opened it came again) or "key" (keys revoke).
    by: str = "token"


@dataclass(frozen=True, slots=True)
class Sample:
    """RSS and open file descriptors of one process (``series``: role and pid)."""

    series: str
    t: float
    rss_kib: int
    fds: int


@dataclass(frozen=True, slots=True)
class Failure:
    cause: str
    detail: str
    t: float = 0.0


@dataclass
class Verdict:
    failures: list[Failure]
    named_breaks: Counter[str]
    recovery: dict[str, list[float]]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.failures

    def by_cause(self) -> Counter[str]:
        return Counter(f.cause for f in self.failures)


@dataclass
class Ledger:
    """Everything recorded in a run; ``check`` applies the rules."""

    grace: float
    skew_margin: float
    recovery_limit: float = 5.0
    rss_growth_mib: float = 8.0
    rss_growth_fraction: float = 0.05
    fd_growth: int = 8
    min_series_seconds: float = 60.0
    answers: list[Answer] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    issued: dict[str, Issued] = field(default_factory=dict)
    verifications: list[Verification] = field(default_factory=list)
    refreshes: list[RefreshAttempt] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    redemptions: list[CodeRedemption] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    revoked_kids: dict[str, float] = field(default_factory=dict)
    rotations: list[tuple[float, str]] = field(default_factory=list)

    # --- recording ------------------------------------------------------------------------
    def answer(self, answer: Answer) -> None:
        self.answers.append(answer)

    def fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def issue(self, issued: Issued) -> None:
        self.issued.setdefault(issued.token_id, issued)

    def verified(self, verification: Verification) -> None:
        self.verifications.append(verification)

    def refresh(self, attempt: RefreshAttempt) -> None:
        self.refreshes.append(attempt)

    def probe(self, probe: Probe) -> None:
        self.probes.append(probe)

    def redemption(self, redemption: CodeRedemption) -> None:
        self.redemptions.append(redemption)

    def sample(self, sample: Sample) -> None:
        self.samples.append(sample)

    def key_revoked(self, kid: str, t: float) -> None:
        self.revoked_kids.setdefault(kid, t)

    # --- helpers --------------------------------------------------------------------------
    def _kid_revoked_by(self, kid: str | None, t: float) -> bool:
        """The soak revoked ``kid`` before ``t`` (a few seconds' slack: caches, clocks)."""
        if kid is None or kid not in self.revoked_kids:
            return False
        return self.revoked_kids[kid] <= t + self.skew_margin

    def _fault_at(self, t0: float, t1: float) -> Fault | None:
        """The fault whose window (to its end + recovery limit) overlaps [t0, t1]."""
        for fault in self.faults:
            if t0 <= fault.end + self.recovery_limit and t1 >= fault.start:
                return fault
        return None

    def in_fault(self, t0: float, t1: float) -> bool:
        return self._fault_at(t0, t1) is not None

    # --- the rules ------------------------------------------------------------------------
    def check(self) -> Verdict:
        failures: list[Failure] = []
        named: Counter[str] = Counter()
        failures += self._verification_failures()
        failures += self._refresh_failures(named)
        failures += self._code_failures()
        failures += self._probe_failures()
        failures += self._answer_failures()
        recovery, slow = self._recovery()
        failures += slow
        failures += self.resource_failures()
        return Verdict(failures=failures, named_breaks=named, recovery=recovery)

    def _verification_failures(self) -> list[Failure]:
        out = []
        for v in self.verifications:
            if v.ok:
                continue
            token = self.issued.get(v.token_id)
            if token is None:
                out.append(Failure("verifier-refused", f"{v.verifier}: unknown token {v.token_id}", v.t))
                continue
            if v.t >= token.exp - self.skew_margin or self._kid_revoked_by(token.kid, v.t):
                continue  # expected refusal: at the end of its life, or its key revoked
            if _names_unreachable(v.reason) and self.in_fault(v.t - 15, v.t):
                continue  # the JWKS could not be fetched through a fault (a named cause)
            cause = "unknown-kid" if _names_unknown_key(v.reason) else "verifier-refused"
            out.append(Failure(cause, f"{v.verifier}: {v.reason} (kid {token.kid}, {token.kind})", v.t))
        return out

    def _refresh_failures(self, named: Counter[str]) -> list[Failure]:
        out = []
        by_token: dict[str, list[RefreshAttempt]] = defaultdict(list)
        for attempt in sorted(self.refreshes, key=lambda a: a.t0):
            by_token[attempt.token_id].append(attempt)
        for token_id, attempts in by_token.items():
            accepted = [a for a in attempts if a.status == 200]
            if accepted:
                first = accepted[0]
                for later in accepted[1:]:
                    if later.t0 > first.t1 + self.grace + self.skew_margin:
                        out.append(
                            Failure(
                                "refresh-accepted-twice",
                                f"chain {later.chain}: {token_id} accepted {later.t0 - first.t1:.1f} s "
                                f"after its first use (grace {self.grace:g} s)",
                                later.t0,
                            )
                        )
                    elif later.body_hash != first.body_hash:
                        out.append(
                            Failure(
                                "refresh-accepted-twice",
                                f"chain {later.chain}: a replay inside the grace got another body",
                                later.t0,
                            )
                        )
            for attempt in attempts:
                if attempt.status != 400:
                    continue
                if attempt.deliberate in ("late", "after_reuse"):
                    continue  # refused as it must be
                cause = self._name_break(attempt, attempts)
                if cause is not None:
                    named[cause] += 1
                elif attempt.deliberate == "grace":
                    out.append(
                        Failure("grace-replay-refused", f"chain {attempt.chain}: {token_id}", attempt.t0)
                    )
                else:
                    out.append(
                        Failure("chain-broken", f"chain {attempt.chain}: {token_id} refused", attempt.t0)
                    )
            for attempt in attempts:
                if attempt.deliberate == "after_reuse" and attempt.status == 200:
                    out.append(
                        Failure(
                            "reuse-not-revoked", f"chain {attempt.chain}: successor still worked", attempt.t0
                        )
                    )
        return out

    def _name_break(self, refused: RefreshAttempt, attempts: list[RefreshAttempt]) -> str | None:
        """The fault that explains a refused refresh, or None (then it is a defect)."""
        if self._kid_revoked_by(refused.kid, refused.t1):
            return "key_revoke"
        for earlier in attempts:
            if earlier.t0 >= refused.t0:
                break
            if earlier.status is None or earlier.status >= 500:
                fault = self._fault_at(earlier.t0, earlier.t1)
                if fault is not None:
                    return fault.kind
        return None

    def _code_failures(self) -> list[Failure]:
        accepted: dict[str, list[CodeRedemption]] = defaultdict(list)
        for r in sorted(self.redemptions, key=lambda r: r.t0):
            if r.status == 200:
                accepted[r.code_id].append(r)
        return [
            Failure(
                "code-accepted-twice",
                f"chain {again.chain}: code {code_id} answered with tokens again "
                f"{again.t0 - first.t1:.1f} s after its first redemption"
                + (" (a deliberate replay)" if again.deliberate else ""),
                again.t0,
            )
            for code_id, (first, *others) in accepted.items()
            for again in others
        ]

    def _probe_failures(self) -> list[Failure]:
        out = []
        for probe in self.probes:
            deadline = KEY_REVOKE_DEADLINE if probe.by == "key" else REVOKE_DEADLINES[probe.route]
            if probe.accepted and probe.t0 > probe.revoked_at + deadline:
                out.append(
                    Failure(
                        "revocation-late",
                        f"{probe.route} accepted {probe.token_id} {probe.t0 - probe.revoked_at:.2f} s "
                        f"after its revocation (allowed {deadline:g} s)",
                        probe.t0,
                    )
                )
        return out

    def _answer_failures(self) -> list[Failure]:
        out = []
        for a in self.answers:
            if a.status is None or a.status >= 500:
                if not self.in_fault(a.t0, a.t1):
                    what = "connection error" if a.status is None else str(a.status)
                    out.append(Failure("5xx-outside-faults", f"{a.kind}: {what} {a.detail}".rstrip(), a.t0))
            elif not a.expected and not self._kid_revoked_by(a.kid, a.t1):
                out.append(Failure("unexpected-answer", f"{a.kind}: {a.status} {a.detail}".rstrip(), a.t0))
        return out

    def _recovery(self) -> tuple[dict[str, list[float]], list[Failure]]:
        """Per fault kind, seconds from the fault's end to the service answering normally.

        Recovery = the later of the first success and the last error after the end.
        """
        recovery: dict[str, list[float]] = defaultdict(list)
        slow = []
        answers = sorted(self.answers, key=lambda a: a.t0)
        for fault in self.faults:
            first_ok = None
            last_error = fault.end
            for a in answers:
                if a.t1 < fault.end:
                    continue
                failed = a.status is None or a.status >= 500
                if failed and a.t0 <= fault.end + self.recovery_limit:
                    last_error = max(last_error, a.t1)
                if not failed and a.t0 >= fault.end and (first_ok is None or a.t1 < first_ok):
                    first_ok = a.t1
            if first_ok is None:
                continue  # the run ended first: nothing to measure
            seconds = max(first_ok, last_error) - fault.end
            recovery[fault.kind].append(seconds)
            if first_ok - fault.end > self.recovery_limit:
                slow.append(
                    Failure(
                        "slow-recovery",
                        f"{fault.kind}: first success {first_ok - fault.end:.1f} s after",
                        fault.end,
                    )
                )
        return dict(recovery), slow

    def resource_failures(self) -> list[Failure]:
        """Flat memory and no descriptor leak, per process (a restarted process is a new series).

        Judged on series that lasted ``min_series_seconds``: over the second half of the
        series, the least-squares slope of RSS times that half's length (the growth the
        trend predicts) must stay under max(``rss_growth_mib``, ``rss_growth_fraction`` of
        the median RSS): warm-up (imports, pools, caches) belongs to the first half. The
        most descriptors open in the last quarter may exceed the most in the first half by
        at most ``fd_growth`` (a pool reconnecting after a fault is normal; a leak per
        request or per fault grows without bound).
        """
        out = []
        for name, series in self.series().items():
            if len(series) < 8 or series[-1].t - series[0].t < self.min_series_seconds:
                continue
            half = series[len(series) // 2 :]
            span = half[-1].t - half[0].t
            slope = _slope([s.t for s in half], [s.rss_kib / 1024 for s in half])
            median = statistics.median(s.rss_kib / 1024 for s in series)
            allowed = max(self.rss_growth_mib, self.rss_growth_fraction * median)
            if slope * span > allowed:
                out.append(
                    Failure(
                        "memory-growth",
                        f"{name}: +{slope * span:.1f} MiB over the second half (allowed {allowed:.1f})",
                        half[-1].t,
                    )
                )
            first = max(s.fds for s in series[: len(series) // 2])
            last = max(s.fds for s in series[3 * len(series) // 4 :])
            if last > first + self.fd_growth:
                out.append(Failure("fd-growth", f"{name}: {first} -> {last} descriptors", series[-1].t))
        return out

    def series(self) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = defaultdict(list)
        for s in sorted(self.samples, key=lambda s: s.t):
            out[s.series].append(s)
        return dict(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "answers": [asdict(a) for a in self.answers],
            "faults": [asdict(f) for f in self.faults],
            "issued": [asdict(i) for i in self.issued.values()],
            "verifications": [asdict(v) for v in self.verifications],
            "refreshes": [asdict(r) for r in self.refreshes],
            "probes": [asdict(p) for p in self.probes],
            "redemptions": [asdict(r) for r in self.redemptions],
            "samples": [asdict(s) for s in self.samples],
            "revoked_kids": self.revoked_kids,
            "rotations": self.rotations,
        }


def _names_unknown_key(reason: str) -> bool:
    reason = reason.lower()
    return any(word in reason for word in ("no_matching_key", "unknown", "no matching", "kid", "jwks_no"))


def _names_unreachable(reason: str) -> bool:
    reason = reason.lower()
    return any(
        word in reason for word in ("jwks-unreachable", "jwks_unavailable", "err_jwks_timeout", "fetch")
    )


def _slope(xs: list[float], ys: list[float]) -> float:
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
