"""The soak's ledger rules (scripts/soakkit/ledger.py), fed synthetic events.

Each rule is shown passing on a clean history and failing on the history it exists to
catch, through the ledger's own API: a rule that cannot fail proves nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from soakkit.ledger import (
    Answer,
    CodeRedemption,
    Fault,
    Issued,
    Ledger,
    Probe,
    RefreshAttempt,
    Sample,
    Verification,
)

T = 1_800_000_000.0


def ledger() -> Ledger:
    return Ledger(grace=5, skew_margin=3, recovery_limit=5, min_series_seconds=60)


def causes(book: Ledger) -> list[str]:
    return sorted(f.cause for f in book.check().failures)


def test_an_empty_ledger_is_clean() -> None:
    assert ledger().check().clean


# --- verifiers ------------------------------------------------------------------------------
def test_a_refused_valid_token_fails_and_an_unknown_kid_is_counted_apart() -> None:
    book = ledger()
    book.issue(Issued("t1", "login", T, T + 30, "k1"))
    book.verified(Verification("t1", "pyjwt", T + 1, True))
    assert book.check().clean
    book.verified(Verification("t1", "jose", T + 2, False, "ERR_JWKS_NO_MATCHING_KEY"))
    book.verified(Verification("t1", "authsvc.verifier", T + 2, False, "bad_signature"))
    assert causes(book) == ["unknown-kid", "verifier-refused"]


def test_refusals_at_the_end_of_life_or_of_a_revoked_key_are_expected() -> None:
    book = ledger()
    book.issue(Issued("t1", "login", T, T + 30, "k1"))
    book.issue(Issued("t2", "login", T, T + 30, "k2"))
    book.verified(Verification("t1", "pyjwt", T + 28, False, "ExpiredSignatureError"))
    book.key_revoked("k2", T + 10)
    book.verified(Verification("t2", "jose", T + 11, False, "ERR_JWKS_NO_MATCHING_KEY"))
    assert book.check().clean
    book.verified(Verification("t2", "jose", T + 2, False, "ERR_JWKS_NO_MATCHING_KEY"))  # before the revoke
    assert causes(book) == ["unknown-kid"]


def test_a_jwks_fetch_failure_is_excused_only_during_a_fault() -> None:
    book = ledger()
    book.issue(Issued("t1", "login", T, T + 60, "k1"))
    book.fault(Fault("pg_restart", T + 5, T + 6))
    book.verified(Verification("t1", "pyjwt", T + 8, False, "jwks-unreachable: refused"))
    assert book.check().clean
    book.verified(Verification("t1", "pyjwt", T + 40, False, "jwks-unreachable: refused"))
    assert causes(book) == ["verifier-refused"]


# --- refresh chains -------------------------------------------------------------------------
def test_a_refresh_token_accepted_again_after_the_grace_fails() -> None:
    book = ledger()
    book.refresh(RefreshAttempt("c1", "r1", "k1", T, T + 0.1, 200, "body"))
    book.refresh(RefreshAttempt("c1", "r1", "k1", T + 1, T + 1.1, 200, "body", "grace"))
    assert book.check().clean
    book.refresh(RefreshAttempt("c1", "r1", "k1", T + 9, T + 9.1, 200, "body", "late"))
    assert causes(book) == ["refresh-accepted-twice"]


def test_a_replay_inside_the_grace_must_get_the_same_body() -> None:
    book = ledger()
    book.refresh(RefreshAttempt("c1", "r1", "k1", T, T + 0.1, 200, "body"))
    book.refresh(RefreshAttempt("c1", "r1", "k1", T + 1, T + 1.1, 200, "other", "grace"))
    assert causes(book) == ["refresh-accepted-twice"]


def test_a_refused_grace_replay_fails() -> None:
    book = ledger()
    book.refresh(RefreshAttempt("c1", "r1", "k1", T, T + 0.1, 200, "body"))
    book.refresh(RefreshAttempt("c1", "r1", "k1", T + 1, T + 1.1, 400, None, "grace"))
    assert causes(book) == ["grace-replay-refused"]


def test_after_a_refused_late_replay_the_successor_must_be_refused() -> None:
    book = ledger()
    book.refresh(RefreshAttempt("c1", "r1", "k1", T, T + 0.1, 200, "body"))
    book.refresh(RefreshAttempt("c1", "r1", "k1", T + 10, T + 10.1, 400, None, "late"))
    book.refresh(RefreshAttempt("c1", "r2", "k1", T + 11, T + 11.1, 400, None, "after_reuse"))
    assert book.check().clean
    book.refresh(RefreshAttempt("c2", "r3", "k1", T + 11, T + 11.1, 200, "x", "after_reuse"))
    assert causes(book) == ["reuse-not-revoked"]


def test_a_chain_broken_without_a_fault_to_name_fails() -> None:
    book = ledger()
    book.refresh(RefreshAttempt("c1", "r1", "k1", T, T + 0.1, 400))
    assert causes(book) == ["chain-broken"]


def test_a_chain_broken_after_a_lost_answer_in_a_fault_is_named() -> None:
    book = ledger()
    book.fault(Fault("pg_restart", T, T + 2))
    book.refresh(RefreshAttempt("c1", "r1", "k1", T + 0.5, T + 0.6, 503))
    book.refresh(RefreshAttempt("c1", "r1", "k1", T + 9, T + 9.1, 400))
    book.key_revoked("k9", T + 20)
    book.refresh(RefreshAttempt("c2", "r2", "k9", T + 21, T + 21.1, 400))
    verdict = book.check()
    assert verdict.clean
    assert verdict.named_breaks == {"pg_restart": 1, "key_revoke": 1}
    # the same lost answer without a fault window: no name, a failure
    unnamed = ledger()
    unnamed.refresh(RefreshAttempt("c1", "r1", "k1", T + 0.5, T + 0.6, None))
    unnamed.refresh(RefreshAttempt("c1", "r1", "k1", T + 9, T + 9.1, 400))
    assert causes(unnamed) == ["chain-broken"]


# --- revocation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("by", "route", "after", "fails"),
    [
        # Revoked at /revoke: /token and introspection at once, /users/me within 1 s.
        ("token", "introspect", 0.0, False),
        ("token", "introspect", 0.01, True),
        ("token", "token", 0.2, True),
        ("token", "users_me", 0.9, False),
        ("token", "users_me", 1.1, True),
        # Its key revoked (keys revoke): every server sees the key store within 1 s.
        ("key", "introspect", 0.9, False),
        ("key", "introspect", 1.1, True),
        ("key", "users_me", 0.5, False),
        ("key", "users_me", 1.2, True),
        # Its browser session ended (/logout), or its code came again: as /revoke.
        ("logout", "token", 0.0, False),
        ("logout", "token", 0.05, True),
        ("logout", "introspect", 0.3, True),
        ("logout", "users_me", 0.9, False),
        ("logout", "users_me", 1.1, True),
        ("code_replay", "token", 0.05, True),
        ("code_replay", "users_me", 1.1, True),
        ("code_replay", "users_me", 0.5, False),
    ],
)
def test_a_revoked_token_stops_working_in_time(by: str, route: str, after: float, fails: bool) -> None:
    book = ledger()
    book.probe(Probe("t1", T, route, T + after, True, by))
    book.probe(Probe("t1", T, route, T + 5, False, by))
    book.probe(Probe("t1", T, route, T + 6, None, by))
    assert causes(book) == (["revocation-late"] if fails else [])


# --- authorization codes --------------------------------------------------------------------
def test_a_code_answered_with_tokens_twice_fails() -> None:
    book = ledger()
    book.redemption(CodeRedemption("s1", "k1", T, T + 0.1, 200))
    book.redemption(CodeRedemption("s1", "k1", T + 5, T + 5.1, 400, "replay"))
    book.redemption(CodeRedemption("s2", "k2", T + 1, T + 1.1, None))  # lost: the chain ends
    book.redemption(CodeRedemption("s3", "k3", T + 2, T + 2.1, 200))
    assert book.check().clean
    book.redemption(CodeRedemption("s3", "k3", T + 3, T + 3.1, 200, "replay"))
    failures = book.check().failures
    assert [f.cause for f in failures] == ["code-accepted-twice"]
    assert "s3" in failures[0].detail and "deliberate" in failures[0].detail
    # A retry after a lost answer that is answered with tokens a second time fails too.
    again = ledger()
    again.redemption(CodeRedemption("s4", "k4", T, T + 0.1, 200))
    again.redemption(CodeRedemption("s4", "k4", T + 0.2, T + 0.3, 200))
    assert causes(again) == ["code-accepted-twice"]


# --- answers and faults ---------------------------------------------------------------------
def test_a_5xx_fails_outside_a_fault_window_and_not_inside() -> None:
    book = ledger()
    book.fault(Fault("redis_restart", T, T + 3))
    book.answer(Answer("login", T + 1, T + 1.1, 503))
    book.answer(Answer("login", T + 7, T + 7.1, None))  # within the recovery limit after the end
    book.answer(Answer("login", T + 7.2, T + 7.3, 200))
    assert book.check().clean
    book.answer(Answer("users_me", T + 20, T + 20.1, 500))
    assert causes(book) == ["5xx-outside-faults"]


def test_an_unexpected_answer_fails_unless_its_key_was_revoked() -> None:
    book = ledger()
    book.answer(Answer("users_me", T, T + 0.1, 401, expected=False, kid="k1"))
    assert causes(book) == ["unexpected-answer"]
    book.key_revoked("k1", T - 1)
    assert book.check().clean


def test_recovery_is_measured_and_a_slow_one_fails() -> None:
    book = ledger()
    book.fault(Fault("pg_restart", T, T + 1))
    book.answer(Answer("rotate", T + 1.5, T + 9, 200))  # a slow success does not hide a quick one
    book.answer(Answer("login", T + 1.2, T + 1.4, 503))
    book.answer(Answer("login", T + 1.5, T + 2.0, 200))
    verdict = book.check()
    assert verdict.clean
    assert verdict.recovery == {"pg_restart": [pytest.approx(1.0)]}
    slow = ledger()
    slow.fault(Fault("instance_kill", T, T + 1))
    slow.answer(Answer("login", T + 8, T + 8.1, 200))
    assert causes(slow) == ["slow-recovery"]


# --- resources ------------------------------------------------------------------------------
def series(book: Ledger, name: str, rss_mib: list[float], fds: list[int]) -> None:
    for i, (rss, fd) in enumerate(zip(rss_mib, fds, strict=True)):
        book.sample(Sample(name, T + 10 * i, int(rss * 1024), fd))


def test_flat_memory_and_descriptors_pass_even_after_a_warm_up() -> None:
    book = ledger()
    series(book, "a-worker-1", [60, 90, 110, 120, 120, 121, 120, 121, 120, 121, 120, 121], [20] * 12)
    assert book.check().clean


def test_memory_growing_through_the_second_half_fails() -> None:
    book = ledger()
    series(book, "a-worker-1", [100 + 3 * i for i in range(12)], [20] * 12)
    assert causes(book) == ["memory-growth"]


def test_descriptors_growing_fail() -> None:
    book = ledger()
    series(book, "a-worker-1", [100] * 12, [20, 21, 20, 22, 20, 21, 24, 26, 28, 30, 32, 34])
    assert causes(book) == ["fd-growth"]


def test_short_series_are_not_judged() -> None:
    book = ledger()
    series(book, "a-worker-2", [100 + 50 * i for i in range(5)], [20, 40, 60, 80, 100])
    assert book.check().clean


# --- the workload's own checks of an answer -----------------------------------------------------
@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://127.0.0.1/cb?code=c1&state=s1&iss=https%3A%2F%2Fauth.test", True),
        ("http://127.0.0.1/cb?code=c1&state=other&iss=https%3A%2F%2Fauth.test", False),
        ("http://127.0.0.1/cb?code=c1&state=s1&iss=https%3A%2F%2Fevil.test", False),
        ("http://127.0.0.1/cb?error=access_denied&state=s1&iss=https%3A%2F%2Fauth.test", False),
        ("http://127.0.0.1/elsewhere?code=c1&state=s1&iss=https%3A%2F%2Fauth.test", False),
    ],
)
async def test_a_sign_ins_redirect_is_checked_not_only_its_status(location: str, expected: bool) -> None:
    """A 303 is judged by its callback too (state, iss, a code): the check once ran on 2xx only."""
    from benchkit.browser import callback_problem
    from soakkit.clients import Workload

    book = ledger()
    workload = Workload(
        "http://auth.test", book, [], ("svc", "x"), lambda *_: None, grace=5, skew_margin=3, seed=1
    )
    await workload.http.aclose()
    workload.http = httpx.AsyncClient(
        base_url="http://auth.test",
        transport=httpx.MockTransport(lambda _request: httpx.Response(303, headers={"location": location})),
    )
    answer = await workload.request(
        "authorize_sso",
        "GET",
        "/authorize",
        expect=(303,),
        check=lambda response: callback_problem(response, "s1", "https://auth.test"),
    )
    assert answer is not None
    assert answer.status_code == 303
    assert [a.expected for a in book.answers] == [expected]
    await workload.close()
