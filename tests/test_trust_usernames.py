"""Usernames and passwords under attack (issue #13, finding 14; CONTRACT.md "Trust rules").

Usernames are compared after PRECIS UsernameCaseMapped (RFC 8265), at add and
at login: with ``alice`` present, ``Alice``, ``ALICE``, the fullwidth
``alice`` (U+FF41 ...) and the mixed-script look-alike (U+0430 CYRILLIC SMALL
LETTER A, then Latin ``lice``) are refused, and ``ALICE`` or the fullwidth
form log in as alice (same ``sub``). Passwords are NFC
(OpaqueString) and at least ``AUTHSVC_PASSWORD_MIN_LENGTH`` (8) characters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support import AppHarness, claims_of, run_cli
from tests.trust_support import assert_one_line_error, brief, cli_env, cli_ok, password_form

PASSWORD = "alice-password-1"
LOOK_ALIKES = {
    "capitalised": "Alice",
    "upper case": "ALICE",
    "fullwidth": "\uff41\uff4c\uff49\uff43\uff45",
    "Cyrillic a": "\u0430lice",  # U+0430 CYRILLIC SMALL LETTER A, then Latin "lice"
}


def test_look_alike_usernames_are_refused(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    cli_ok(env, "db", "upgrade")  # only serve and db upgrade create a database
    cli_ok(env, "users", "add", "alice", "--password-stdin", input=PASSWORD + "\n")

    def add(name: str) -> Any:
        return run_cli("users", "add", name, "--password-stdin", env=env, input="another-password\n")

    with ThreadPoolExecutor(len(LOOK_ALIKES)) as pool:
        results = dict(zip(LOOK_ALIKES, pool.map(add, LOOK_ALIKES.values()), strict=True))
    added = [f"{kind} ({LOOK_ALIKES[kind]!r})" for kind, result in results.items() if result.returncode == 0]
    assert not added, f"added beside alice: {', '.join(added)}"
    for result in results.values():
        assert_one_line_error(result)


@pytest.fixture
async def alice_harness(harness_factory: Callable[..., Any], tmp_path: Path) -> tuple[AppHarness, str]:
    """A harness where alice was added through the CLI, and her ``sub``.

    Function-scoped: hypothesis runs all its examples against one harness.
    """
    h: AppHarness = await harness_factory(login_max_per_user=100_000, login_max_per_address=100_000)
    cli_ok(cli_env(tmp_path), "users", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    r = await h.client.post("/token", data=password_form("alice", PASSWORD))
    assert r.status_code == 200, brief(r)
    return h, claims_of(r.json()["access_token"])["sub"]


# each letter of "alice": itself, upper case, fullwidth lower, fullwidth upper
_VARIANTS = {
    c: [c, c.upper(), chr(ord(c) - ord("a") + 0xFF41), chr(ord(c) - ord("a") + 0xFF21)] for c in "alice"
}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choices=st.tuples(*(st.integers(0, 3) for _ in "alice")))
@example(choices=(1, 1, 1, 1, 1))  # ALICE
@example(choices=(2, 2, 2, 2, 2))  # fullwidth
async def test_case_and_width_variants_log_in_as_the_same_user(
    alice_harness: tuple[AppHarness, str], choices: tuple[int, ...]
) -> None:
    h, sub = alice_harness
    typed = "".join(_VARIANTS[c][i] for c, i in zip("alice", choices, strict=True))
    r = await h.client.post("/token", data=password_form(typed, PASSWORD))
    assert r.status_code == 200, f"{typed!r}: {brief(r)}"
    assert claims_of(r.json()["access_token"])["sub"] == sub


async def test_passwords_are_compared_in_nfc(harness_factory: Callable[..., Any], tmp_path: Path) -> None:
    h: AppHarness = await harness_factory(login_max_per_user=100_000, login_max_per_address=100_000)
    env = cli_env(tmp_path)
    composed = unicodedata.normalize("NFC", "Ça-va-très-bien")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    cli_ok(env, "users", "add", "nfd-user", "--password-stdin", input=decomposed + "\n")
    cli_ok(env, "users", "add", "nfc-user", "--password-stdin", input=composed + "\n")
    wrong = []
    for user, typed, how in (("nfd-user", composed, "composed"), ("nfc-user", decomposed, "decomposed")):
        r = await h.client.post("/token", data=password_form(user, typed))
        if r.status_code != 200:
            wrong.append(f"{user} typing the password {how}: {brief(r)}")
    assert not wrong, wrong


def test_short_passwords_are_refused(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    cli_ok(env, "db", "upgrade")  # only serve and db upgrade create a database
    cli_ok(env, "users", "add", "carol", "--password-stdin", input="carol-password\n")

    def run(args: tuple[str, ...], password: str) -> Any:
        return run_cli(*args, "--password-stdin", env=env, input=password + "\n")

    attempts = {
        "users add bob, 'x'": (("users", "add", "bob"), "x"),
        "users add dave, 7 characters": (("users", "add", "dave"), "1234567"),
        "users set-password carol, 'short'": (("users", "set-password", "carol"), "short"),
    }
    with ThreadPoolExecutor(len(attempts)) as pool:
        results = dict(zip(attempts, pool.map(lambda a: run(*a), attempts.values()), strict=True))
    accepted = [what for what, result in results.items() if result.returncode == 0]
    assert not accepted, f"short passwords accepted: {accepted}"
    for result in results.values():
        assert_one_line_error(result)
    cli_ok(env, "users", "add", "erin", "--password-stdin", input="12345678\n")  # 8 is enough
