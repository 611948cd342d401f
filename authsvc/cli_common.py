"""What the command modules share: the one-line error, settings, passwords, the stores."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from authsvc.errors import AuthsvcError
from authsvc.passwords import PasswordHasher
from authsvc.settings import AuthSettings, get_settings

__all__ = [
    "CommandError",
    "command_settings",
    "hasher_for",
    "read_password",
    "read_secret",
    "require_user",
    "run_async",
    "with_stores",
]

T = TypeVar("T")


class CommandError(AuthsvcError):
    """A command failed in a way the operator can fix; printed as one line."""


def command_settings() -> AuthSettings:
    return get_settings()


def run_async(coro: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coro())  # type: ignore[arg-type]


def read_secret(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        value = line.rstrip("\r\n")
    else:
        if not sys.stdin.isatty():  # getpass would warn, echo, then read the pipe anyway
            raise CommandError(f"no terminal to ask for the {prompt}: pipe it in with --password-stdin")
        value = getpass.getpass(f"{prompt}: ")
        if getpass.getpass(f"{prompt} (again): ") != value:
            raise CommandError("the two entries differ")
    if not value:
        raise CommandError("empty password")
    return value


def read_password(settings: AuthSettings, from_stdin: bool, prompt: str) -> str:
    """A new password in its PRECIS OpaqueString form, at least AUTHSVC_PASSWORD_MIN_LENGTH long."""
    from authsvc.usernames import InvalidPassword, new_password

    try:
        return new_password(read_secret(from_stdin, prompt), settings.password_min_length)
    except InvalidPassword as exc:
        raise CommandError(str(exc)) from None


def hasher_for(settings: AuthSettings) -> PasswordHasher:
    return PasswordHasher(settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)


# --- the stores ------------------------------------------------------------------------
async def with_stores(settings: AuthSettings, action: Callable[[Any, Any], Awaitable[T]]) -> T:
    from authsvc.store.sql.database import command_stores

    async with command_stores(settings) as (users, sessions):
        return await action(users, sessions)


async def require_user(users: Any, name: str) -> Any:
    from authsvc.usernames import login_name

    mapped = login_name(name)
    user = await users.by_username(mapped) if mapped is not None else None
    if user is None:
        raise CommandError(f"no user named {name!r}")
    return user
