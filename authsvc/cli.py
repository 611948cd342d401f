"""The operator's command line: serve, users, keys, db.

Every command reads the same ``AUTHSVC_`` settings as the server. Exit 0 on
success, 1 on error (one line on stderr, no traceback), 2 on usage errors.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Any, TypeVar

import typer

from authsvc.cli_clients import clients_app
from authsvc.cli_common import CommandError, command_settings, run_async, with_stores
from authsvc.cli_keys import keys_app
from authsvc.cli_users import users_app
from authsvc.clock import SystemClock
from authsvc.errors import AuthsvcError
from authsvc.settings import DEFAULT_PORT, AuthSettings

__all__ = ["app", "run"]

T = TypeVar("T")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="authsvc: an OAuth 2.0 token service.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema and housekeeping.")
app.add_typer(users_app, name="users")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")


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

    settings = command_settings()
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
        run_async(lambda: _check_database(settings))
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


# --- db ------------------------------------------------------------------------------
async def _revision(migrate: bool) -> str | None:
    """The database's schema revision, after bringing it to head when ``migrate``.

    ``db upgrade`` creates a missing database (0600); ``db current`` never does.
    """
    from authsvc.migrations import current_revision, upgrade
    from authsvc.store.sql.opening import connect_database

    engine = await connect_database(command_settings().database_url, create=migrate)
    try:
        if migrate:
            await upgrade(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the current revision."""
    typer.echo(f"database at revision {run_async(lambda: _revision(migrate=True))}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the code's."""
    from authsvc.migrations import head_revision

    current = run_async(lambda: _revision(migrate=False))
    head = head_revision()
    typer.echo(
        f"database {current or 'empty'}; code {head}"
        + ("" if current == head else " (run: authsvc db upgrade)")
    )


@db_app.command("prune")
def db_prune() -> None:
    """Delete expired refresh tokens, sessions, revocations, codes and browser sessions."""
    from authsvc.store.sql.browser import SqlBrowserStore

    settings = command_settings()

    async def prune(_users: Any, sessions: Any) -> dict[str, int]:
        now = SystemClock().now()
        counts = dict(await sessions.prune(now))
        counts.update(await SqlBrowserStore(sessions.db).prune(now, code_memory=settings.access_token_ttl))
        return counts

    counts = run_async(lambda: with_stores(settings, prune))
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
