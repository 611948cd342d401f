"""``authsvc users ...``: add, list, disable, enable, set-password, sessions, logout, consents."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from authsvc.cli_common import (
    CommandError,
    command_settings,
    hasher_for,
    read_password,
    require_user,
    run_async,
    with_stores,
)
from authsvc.clock import SystemClock
from authsvc.events import ConsentRevoked, Events, SessionsLoggedOut, UserDisabled, UserEnabled

__all__ = ["users_app"]

users_app = typer.Typer(no_args_is_help=True, help="Manage users.")


@users_app.command("add")
def users_add(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    scope: Annotated[str, typer.Option(help="Space-separated scopes the user may get.")] = "",
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    full_name: Annotated[str | None, typer.Option("--full-name", help="Full name.")] = None,
) -> None:
    """Add a user (the name is kept in its RFC 8265 form: ``Alice`` is ``alice``)."""
    from authsvc.scopes import split_scope
    from authsvc.store.sql.users import DuplicateUser
    from authsvc.usernames import InvalidUsername, new_username

    settings = command_settings()
    try:
        username, username_key = new_username(name)
    except InvalidUsername as exc:
        raise CommandError(str(exc)) from None
    if username == settings.default_client_id:
        raise CommandError("a user name may not equal a client id")
    scopes = split_scope(" ".join(scope.split())) if scope.strip() else frozenset()
    if scopes is None:
        raise CommandError("--scope: scope tokens are printable ASCII without quotes or backslashes")
    password = read_password(settings, password_stdin, "password")
    password_hash = hasher_for(settings).hash_sync(password)

    async def add(users: Any, _sessions: Any) -> Any:
        from authsvc.store.sql.clients import SqlClientStore

        if await SqlClientStore(users.engine).get(username) is not None:
            raise CommandError("a user name may not equal a client id")
        try:
            return await users.add(
                username,
                password_hash,
                SystemClock().now(),
                username_key=username_key,
                scopes=scopes or frozenset(),
                email=email,
                full_name=full_name,
            )
        except DuplicateUser:
            raise CommandError(f"user {username!r} exists, or a name that looks the same") from None

    user = run_async(lambda: with_stores(settings, add))
    typer.echo(f"added user {user.username} (sub {user.id})")


@users_app.command("list")
def users_list() -> None:
    """List users."""
    users = run_async(lambda: with_stores(command_settings(), lambda u, _s: u.list()))
    for user in users:
        state = "disabled" if user.disabled else "active"
        typer.echo(f"{user.username}\t{user.id}\t{state}\t{' '.join(sorted(user.scopes))}")


def _set_disabled(name: str, disabled: bool) -> None:
    async def change(users: Any, _sessions: Any) -> int:
        user = await require_user(users, name)
        now = SystemClock().now()
        if disabled:  # one transaction: a new credentials version, then every session ends
            revoked = int(await users.change_credentials(user.id, now, "user_disabled", disable=True))
            Events().publish(UserDisabled(user_id=user.id, count=revoked))
            return revoked
        await users.set_disabled(user.username, False, now)
        Events().publish(UserEnabled(user_id=user.id))
        return 0

    revoked = run_async(lambda: with_stores(command_settings(), change))
    typer.echo(
        f"{'disabled' if disabled else 'enabled'} {name}"
        + (f"; revoked {revoked} sessions" if revoked else "")
    )


@users_app.command("disable")
def users_disable(name: str) -> None:
    """Disable a user and end all their sessions."""
    _set_disabled(name, True)


@users_app.command("enable")
def users_enable(name: str) -> None:
    """Enable a user."""
    _set_disabled(name, False)


@users_app.command("set-password")
def users_set_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Change a user's password and end all their sessions."""
    settings = command_settings()
    password = read_password(settings, password_stdin, "new password")
    password_hash = hasher_for(settings).hash_sync(password)

    async def change(users: Any, _sessions: Any) -> int:
        user = await require_user(users, name)
        now = SystemClock().now()
        return int(
            await users.change_credentials(user.id, now, "password_changed", password_hash=password_hash)
        )

    revoked = run_async(lambda: with_stores(settings, change))
    typer.echo(f"password of {name} changed; revoked {revoked} sessions")


@users_app.command("sessions")
def users_sessions(name: str) -> None:
    """List a user's live sessions."""
    from datetime import UTC, datetime

    async def listing(users: Any, sessions: Any) -> list[Any]:
        user = await require_user(users, name)
        return list(await sessions.live_for_user(user.id, SystemClock().now()))

    for session in run_async(lambda: with_stores(command_settings(), listing)):
        started = datetime.fromtimestamp(session.created_at, UTC).isoformat(timespec="seconds")
        ends = datetime.fromtimestamp(session.expires_at, UTC).isoformat(timespec="seconds")
        typer.echo(
            f"{session.id}\tclient {session.client_id}\tstarted {started}\tends by {ends}\t{session.scope}"
        )


@users_app.command("logout")
def users_logout(name: str) -> None:
    """End all of a user's sessions (their refresh tokens stop working at once)."""

    async def logout(users: Any, sessions: Any) -> int:
        user = await require_user(users, name)
        count = int(await sessions.revoke_user(user.id, SystemClock().now(), "logout"))
        Events().publish(SessionsLoggedOut(user_id=user.id, count=count))
        return count

    typer.echo(f"revoked {run_async(lambda: with_stores(command_settings(), logout))} sessions of {name}")


@users_app.command("consents")
def users_consents(
    name: str,
    revoke: Annotated[
        str | None,
        typer.Option("--revoke", metavar="CLIENT_ID", help="Forget the consent given to a client."),
    ] = None,
) -> None:
    """List the clients a user has consented to (and the scopes), or revoke one consent."""
    from datetime import UTC, datetime

    from authsvc.store.sql.browser import SqlBrowserStore

    async def act(users: Any, sessions: Any) -> list[Any] | bool:
        user = await require_user(users, name)
        store = SqlBrowserStore(sessions.db)
        if revoke is None:
            return list(await store.consents(user.id))
        if not await store.revoke_consent(user.id, revoke):
            raise CommandError(f"{name} has not consented to client {revoke!r}")
        Events().publish(ConsentRevoked(user_id=user.id, client_id=revoke))
        return True

    result = run_async(lambda: with_stores(command_settings(), act))
    if revoke is not None:
        typer.echo(f"revoked the consent of {name} to client {revoke}")
        return
    assert isinstance(result, list)
    for consent in result:
        granted = datetime.fromtimestamp(consent.granted_at, UTC).isoformat(timespec="seconds")
        typer.echo(f"{consent.client_id}\tgranted {granted}\t{' '.join(sorted(consent.scopes))}")
