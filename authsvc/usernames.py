"""Usernames and passwords as RFC 8265 (PRECIS) wants them compared.

A username is the PRECIS ``UsernameCaseMapped`` form of what was typed: fullwidth
letters become ASCII, case is folded, the string is NFC, and spaces, controls
and symbols are refused. ``Alice``, ``ALICE`` and a fullwidth ``alice`` (U+FF41
...) are all ``alice``: one account, reachable by any of them at login.

PRECIS does not map look-alikes across scripts (Cyrillic U+0430 is not Latin
``a``), so at registration two rules from Unicode TS #39 are added: a name's
letters come from one script, and no two names share a *look-alike key* (each
character replaced by the Latin character it is confusable with). The key has a
unique index, so two registrations of look-alikes cannot both succeed, however
they race.

Passwords are PRECIS ``OpaqueString`` (NFC, non-ASCII spaces mapped to a space)
and at least ``AUTHSVC_PASSWORD_MIN_LENGTH`` characters long when they are set.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import precis_i18n

__all__ = [
    "MAX_USERNAME_LENGTH",
    "InvalidPassword",
    "InvalidUsername",
    "login_name",
    "lookalike_key",
    "new_password",
    "new_username",
    "password_form",
]

MAX_USERNAME_LENGTH = 150  # the column's size
_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")
_PASSWORD = precis_i18n.get_profile("OpaqueString")
_SCRIPT_NEUTRAL = ["COMMON", "INHERITED"]  # digits, "._-", combining marks


class InvalidUsername(ValueError):
    """The name cannot be a username; ``str()`` says why without echoing it."""


class InvalidPassword(ValueError):
    """The password cannot be set; ``str()`` says why without echoing it."""


def _enforce(raw: str) -> str | None:
    try:
        return str(_USERNAME.enforce(raw))
    except UnicodeError:
        return None


def login_name(raw: str) -> str | None:
    """The account name a login's ``username`` means, or None if it can name none."""
    name = _enforce(raw)
    return name if name is not None and len(name) <= MAX_USERNAME_LENGTH else None


def new_username(raw: str) -> tuple[str, str]:
    """(name, look-alike key) for a new account, or InvalidUsername."""
    name = _enforce(raw)
    if name is None:
        raise InvalidUsername(
            "a user name is letters, digits and punctuation without spaces or symbols (RFC 8265)"
        )
    if len(name) > MAX_USERNAME_LENGTH:
        raise InvalidUsername(f"a user name has at most {MAX_USERNAME_LENGTH} characters")
    # Imported here: its Unicode tables take 15 MiB, and only registering a name needs them
    # (a server maps login names with PRECIS alone).
    from confusable_homoglyphs import confusables

    if confusables.is_mixed_script(name, allowed_aliases=_SCRIPT_NEUTRAL):
        raise InvalidUsername("a user name's letters must all come from one script")
    return name, lookalike_key(name)


@lru_cache(maxsize=4096)
def _latin_like(char: str) -> str:
    """The ASCII character ``char`` is confusable with, or ``char`` itself."""
    if char.isascii():
        return char
    from confusable_homoglyphs import confusables

    found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin", "common"])
    candidates = [str(h["c"]) for h in found[0]["homoglyphs"]] if found else []
    ascii_like = [c for c in candidates if c.isascii() and c.isalnum()]
    return ascii_like[0] if ascii_like else char


def lookalike_key(name: str) -> str:
    """A skeleton of a (PRECIS-mapped) name toward ASCII, in the spirit of UTS #39.

    Each character confusable with an ASCII letter or digit becomes it (Cyrillic
    U+0430 U+0440 U+0435 is ``ape``). Two names with the same key look alike in common fonts;
    only one may exist. Best effort against whole-script look-alikes; the
    one-script rule of ``new_username`` is exact against mixed ones.
    """
    decomposed = unicodedata.normalize("NFD", name)
    mapped = "".join(_latin_like(c) for c in decomposed)
    return unicodedata.normalize("NFD", mapped).casefold()


def password_form(raw: str) -> str | None:
    """The form a password is hashed and checked in, or None if PRECIS refuses it."""
    try:
        return str(_PASSWORD.enforce(raw))
    except UnicodeError:
        return None


def new_password(raw: str, min_length: int) -> str:
    """The password to hash for a new credential, or InvalidPassword."""
    password = password_form(raw)
    if password is None:
        raise InvalidPassword("a password may not contain control characters")
    if len(password) < min_length:
        raise InvalidPassword(f"a password needs at least {min_length} characters")
    return password
