"""The operator's command line: serve, users, keys, db.

Every command reads the same ``AUTHSVC_`` settings as the server. Exit 0 on
success, 1 on error (one line on stderr, no traceback), 2 on usage errors.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from authsvc.cli_clients import clients_app
from authsvc.cli_keys import keys_app
from authsvc.clock import SystemClock
from authsvc.errors import AuthsvcError
from authsvc.events import ConsentRevoked, Events, SessionsLoggedOut, UserDisabled, UserEnabled
from authsvc.passwords import PasswordHasher
from authsvc.settings import DEFAULT_PORT, AuthSettings, get_settings

__all__ = ["app", "run"]

T = TypeVar("T")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="authsvc: an OAuth 2.0 token service.",
)
users_app = typer.Typer(no_args_is_help=True, help="Manage users.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema and housekeeping.")
app.add_typer(users_app, name="users")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")


class CommandError(AuthsvcError):
    """A command failed in a way the operator can fix; printed as one line."""


def _settings() -> AuthSettings:
    return get_settings()


def _run(coro: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coro())  # type: ignore[arg-type]


def _read_secret(from_stdin: bool, prompt: str) -> str:
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


def _read_password(settings: AuthSettings, from_stdin: bool, prompt: str) -> str:
    """A new password in its PRECIS OpaqueString form, at least AUTHSVC_PASSWORD_MIN_LENGTH long."""
    from authsvc.usernames import InvalidPassword, new_password

    try:
        return new_password(_read_secret(from_stdin, prompt), settings.password_min_length)
    except InvalidPassword as exc:
        raise CommandError(str(exc)) from None


def _hasher(settings: AuthSettings) -> PasswordHasher:
    return PasswordHasher(settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)


# --- serve ---------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = DEFAULT_PORT,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the token service (creates the database and the first key if missing)."""
    from authsvc.app import served_app
    from authsvc.keys.preflight import check_passphrase
    from authsvc.keys.setup import bootstrap_keys, build_key_store
    from authsvc.serving import address, listen, run_uvicorn
    from authsvc.web.pages import load_pages

    settings = _settings()
    # The port first: a busy one or a bad host is one line, before anything is created.
    sock = listen(host, port)
    settings = settings.for_port(sock.getsockname()[1])
    admin_sock = None
    if settings.admin_address is not None:
        try:
            admin_sock = listen(*settings.admin_address)
        except BaseException:
            sock.close()
            raise
        # The port it got (0 asks for a free one): the workers route requests by it.
        admin_where = address(admin_sock)
        settings = settings.model_copy(update={"admin_bind": admin_where})
    try:
        load_pages(settings)  # a broken replacement template is one line now, not a traceback later
        # Create or migrate the database (SQLite) or check the schema (PostgreSQL), create the
        # first key and prove the passphrase opens the signing key, once, before any worker
        # starts: errors are one line here. The app then only loads the keys.
        _run(lambda: _check_database(settings))
        change = bootstrap_keys(settings, SystemClock())
        store = build_key_store(settings)
        check_passphrase(
            store, store.read(), settings.passphrase_bytes, SystemClock().now(), signing_only=True
        )
    except BaseException:
        sock.close()
        if admin_sock is not None:
            admin_sock.close()
        raise
    issuer = settings.resolved_issuer
    typer.echo(f"authsvc {issuer} (keys: {settings.keys_dir}, database: {_redact(settings.database_url)})")
    if change is not None:
        typer.echo(f"key store was empty: {change}")
    typer.echo(f"listening on {address(sock)}" + (f" ({workers} workers)" if workers > 1 else ""))
    if admin_sock is not None:
        typer.echo(f"admin API and console on {address(admin_sock)} (/admin, /console, /metrics)")
    typer.echo(
        "add a user with: echo 'PASSWORD' | authsvc users add NAME --password-stdin --scope 'read write'"
    )
    for warning in _serve_warnings(settings, host):
        typer.echo(f"warning: {warning}", err=True)
    from authsvc.logs import configure_logging

    configure_logging()
    if workers > 1:
        os.environ["AUTHSVC_ISSUER"] = issuer  # each worker builds its own app from the environment
        if settings.admin_bind is not None:
            os.environ["AUTHSVC_ADMIN_BIND"] = settings.admin_bind
        started = run_uvicorn(sock, workers=workers, admin=admin_sock)
    else:
        started = run_uvicorn(sock, app=served_app(settings), admin=admin_sock)
    if not started:
        raise CommandError("the server did not start (the log above says why)")


def _serve_warnings(settings: AuthSettings, host: str) -> list[str]:
    """One line each: settings that work but that an operator should know are risky."""
    warnings = []
    if settings.http_issuer_off_loopback:
        warnings.append(
            f"the issuer {settings.resolved_issuer} is plain http off loopback "
            "(AUTHSVC_ALLOW_HTTP_ISSUER=true): passwords and tokens cross the network unencrypted"
        )
    if settings.loopback_issuer and not _loopback_host(host):
        warnings.append(
            f"listening on {host} but the issuer {settings.resolved_issuer} is a loopback address: "
            "tokens and metadata name an address other hosts cannot reach (set AUTHSVC_ISSUER)"
        )
    return warnings


def _loopback_host(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _check_database(settings: AuthSettings) -> None:
    from authsvc.store.sql.database import open_database

    engine = await open_database(settings, create=True)
    await engine.dispose()


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable)"


# --- users ---------------------------------------------------------------------------
async def _with_stores(settings: AuthSettings, action: Callable[[Any, Any], Awaitable[T]]) -> T:
    from authsvc.store.sql.database import command_stores

    async with command_stores(settings) as (users, sessions):
        return await action(users, sessions)


async def _require_user(users: Any, name: str) -> Any:
    from authsvc.usernames import login_name

    mapped = login_name(name)
    user = await users.by_username(mapped) if mapped is not None else None
    if user is None:
        raise CommandError(f"no user named {name!r}")
    return user


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

    settings = _settings()
    try:
        username, username_key = new_username(name)
    except InvalidUsername as exc:
        raise CommandError(str(exc)) from None
    if username == settings.default_client_id:
        raise CommandError("a user name may not equal a client id")
    scopes = split_scope(" ".join(scope.split())) if scope.strip() else frozenset()
    if scopes is None:
        raise CommandError("--scope: scope tokens are printable ASCII without quotes or backslashes")
    password = _read_password(settings, password_stdin, "password")
    password_hash = _hasher(settings).hash_sync(password)

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

    user = _run(lambda: _with_stores(settings, add))
    typer.echo(f"added user {user.username} (sub {user.id})")


@users_app.command("list")
def users_list() -> None:
    """List users."""
    users = _run(lambda: _with_stores(_settings(), lambda u, _s: u.list()))
    for user in users:
        state = "disabled" if user.disabled else "active"
        typer.echo(f"{user.username}\t{user.id}\t{state}\t{' '.join(sorted(user.scopes))}")


def _set_disabled(name: str, disabled: bool) -> None:
    async def change(users: Any, _sessions: Any) -> int:
        user = await _require_user(users, name)
        now = SystemClock().now()
        if disabled:  # one transaction: a new credentials version, then every session ends
            revoked = int(await users.change_credentials(user.id, now, "user_disabled", disable=True))
            Events().publish(UserDisabled(user_id=user.id, count=revoked))
            return revoked
        await users.set_disabled(user.username, False, now)
        Events().publish(UserEnabled(user_id=user.id))
        return 0

    revoked = _run(lambda: _with_stores(_settings(), change))
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
    settings = _settings()
    password = _read_password(settings, password_stdin, "new password")
    password_hash = _hasher(settings).hash_sync(password)

    async def change(users: Any, _sessions: Any) -> int:
        user = await _require_user(users, name)
        now = SystemClock().now()
        return int(
            await users.change_credentials(user.id, now, "password_changed", password_hash=password_hash)
        )

    revoked = _run(lambda: _with_stores(settings, change))
    typer.echo(f"password of {name} changed; revoked {revoked} sessions")


@users_app.command("sessions")
def users_sessions(name: str) -> None:
    """List a user's live sessions."""
    from datetime import UTC, datetime

    async def listing(users: Any, sessions: Any) -> list[Any]:
        user = await _require_user(users, name)
        return list(await sessions.live_for_user(user.id, SystemClock().now()))

    for session in _run(lambda: _with_stores(_settings(), listing)):
        started = datetime.fromtimestamp(session.created_at, UTC).isoformat(timespec="seconds")
        ends = datetime.fromtimestamp(session.expires_at, UTC).isoformat(timespec="seconds")
        typer.echo(
            f"{session.id}\tclient {session.client_id}\tstarted {started}\tends by {ends}\t{session.scope}"
        )


@users_app.command("logout")
def users_logout(name: str) -> None:
    """End all of a user's sessions (their refresh tokens stop working at once)."""

    async def logout(users: Any, sessions: Any) -> int:
        user = await _require_user(users, name)
        count = int(await sessions.revoke_user(user.id, SystemClock().now(), "logout"))
        Events().publish(SessionsLoggedOut(user_id=user.id, count=count))
        return count

    typer.echo(f"revoked {_run(lambda: _with_stores(_settings(), logout))} sessions of {name}")


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
        user = await _require_user(users, name)
        store = SqlBrowserStore(sessions.db)
        if revoke is None:
            return list(await store.consents(user.id))
        if not await store.revoke_consent(user.id, revoke):
            raise CommandError(f"{name} has not consented to client {revoke!r}")
        Events().publish(ConsentRevoked(user_id=user.id, client_id=revoke))
        return True

    result = _run(lambda: _with_stores(_settings(), act))
    if revoke is not None:
        typer.echo(f"revoked the consent of {name} to client {revoke}")
        return
    assert isinstance(result, list)
    for consent in result:
        granted = datetime.fromtimestamp(consent.granted_at, UTC).isoformat(timespec="seconds")
        typer.echo(f"{consent.client_id}\tgranted {granted}\t{' '.join(sorted(consent.scopes))}")


# --- db ------------------------------------------------------------------------------
async def _revision(migrate: bool) -> str | None:
    """The database's schema revision, after bringing it to head when ``migrate``.

    ``db upgrade`` creates a missing database (0600); ``db current`` never does.
    """
    from authsvc.migrations import current_revision, upgrade
    from authsvc.store.sql.opening import connect_database

    engine = await connect_database(_settings().database_url, create=migrate)
    try:
        if migrate:
            await upgrade(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the current revision."""
    typer.echo(f"database at revision {_run(lambda: _revision(migrate=True))}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the code's."""
    from authsvc.migrations import head_revision

    current = _run(lambda: _revision(migrate=False))
    head = head_revision()
    typer.echo(
        f"database {current or 'empty'}; code {head}"
        + ("" if current == head else " (run: authsvc db upgrade)")
    )


@db_app.command("prune")
def db_prune() -> None:
    """Delete expired refresh tokens, sessions, revocations, codes and browser sessions."""
    from authsvc.store.sql.browser import SqlBrowserStore

    settings = _settings()

    async def prune(_users: Any, sessions: Any) -> dict[str, int]:
        now = SystemClock().now()
        counts = dict(await sessions.prune(now))
        counts.update(await SqlBrowserStore(sessions.db).prune(now, code_memory=settings.access_token_ttl))
        return counts

    counts = _run(lambda: _with_stores(settings, prune))
    typer.echo("pruned " + ", ".join(f"{n} {what}" for what, n in counts.items()))


# --- entry -----------------------------------------------------------------------------
def run() -> None:
    """Run the CLI with one-line errors."""
    from authsvc.logs import configure_logging

    # Warnings and errors as plain lines; operator actions (logout, disable,
    # clients, keys) as JSON audit lines; both on stderr.
    configure_logging(logging.WARNING)
    try:
        app(standalone_mode=False)
    except (typer.Exit, SystemExit) as exc:
        raise SystemExit(getattr(exc, "exit_code", getattr(exc, "code", 0))) from None
    except typer.Abort:
        sys.stderr.write("authsvc: aborted\n")
        raise SystemExit(1) from None
    except Exception as exc:  # click usage errors, ours, and anything else: one line
        show = getattr(exc, "show", None)
        exit_code = getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):  # typer's (vendored) click exceptions
            format_message = getattr(exc, "format_message", None)
            message = format_message() if callable(format_message) else str(exc)
            sys.stderr.write(f"authsvc: {message} (see --help)\n")
            raise SystemExit(exit_code) from None
        if isinstance(exc, AuthsvcError):
            sys.stderr.write(f"authsvc: {exc}\n")
        else:
            sys.stderr.write(f"authsvc: unexpected error: {type(exc).__name__}\n")
        raise SystemExit(1) from None
