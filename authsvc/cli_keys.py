"""``authsvc keys ...`` and the cron entry point shared with scripts/rotate_keys.py."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from authsvc.clock import SystemClock
from authsvc.keys.preflight import check_passphrase
from authsvc.keys.rotation import revoke_key, rotate
from authsvc.keys.setup import build_key_store, lifetimes
from authsvc.keys.timetable import Timetable
from authsvc.keys.writes import require_keys
from authsvc.settings import AuthSettings, get_settings
from authsvc.store.protocols import KeyStore

__all__ = ["cron_main", "keys_app", "rotation_run"]

keys_app = typer.Typer(no_args_is_help=True, help="Signing keys: list, rotate, revoke.")


def _when(ts: float) -> str:
    if math.isinf(ts):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _existing_store(settings: AuthSettings) -> KeyStore:
    if settings.key_store == "database":
        _require_database(settings)
    store = build_key_store(settings)
    require_keys(store.read(), store)
    return store


def _require_database(settings: AuthSettings) -> None:
    """The database exists and answers (one line naming AUTHSVC_DATABASE_URL if not); creates nothing."""
    import asyncio

    from authsvc.store.sql.database import open_database

    async def check() -> None:
        await (await open_database(settings)).dispose()

    asyncio.run(check())


def rotation_run(settings: AuthSettings, *, force: bool, dry_run: bool) -> list[str]:
    """One cron run: rotate keys as the timetable says. Only keys: ``authsvc db prune`` prunes rows."""
    store = _existing_store(settings)
    changes = rotate(
        store,
        lifetimes(settings),
        SystemClock(),
        settings.signing_alg,
        settings.passphrase_bytes,
        force=force,
        dry_run=dry_run,
        standby=settings.key_standby,
    )
    return [("would " if dry_run else "") + str(change) for change in changes]


@keys_app.command("rotate")
def keys_rotate(
    force: Annotated[
        bool, typer.Option("--force", help="Publish a successor now unless one is pending.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
) -> None:
    """Rotate keys as the timetable says (what cron runs)."""
    for line in rotation_run(get_settings(), force=force, dry_run=dry_run):
        typer.echo(line)


# A kid is base64url and may start with "-": take it as the argument, not as an option.
@keys_app.command("revoke", context_settings={"ignore_unknown_options": True})
def keys_revoke(kid: str) -> None:
    """Emergency: remove KID from the JWKS and from signing now; its tokens are refused."""
    settings = get_settings()
    store = _existing_store(settings)
    changes = revoke_key(
        store,
        kid,
        SystemClock(),
        settings.signing_alg,
        settings.passphrase_bytes,
        standby=settings.key_standby,
    )
    if not changes:
        typer.echo(f"{kid} was already revoked")
    for change in changes:
        typer.echo(str(change))


@keys_app.command("list")
def keys_list() -> None:
    """Each key's state and the times it is published, signs, stops and leaves the JWKS."""
    settings = get_settings()
    store = _existing_store(settings)
    doc = store.read()
    now = SystemClock().now()
    check_passphrase(store, doc, settings.passphrase_bytes, now)
    table = Timetable(doc.keys, lifetimes(settings))
    rows = [("KID", "ALG", "STATE", "PUBLISHED", "SIGNS FROM", "STOPS SIGNING", "LEAVES JWKS")]
    for record in sorted(doc.keys, key=lambda k: (k.sign_from, k.created_at)):
        until = table.sign_until(record.kid)
        leaves = table.unpublish_at(record.kid)
        signs_from = math.inf if record.standby else record.sign_from  # a standby signs when promoted
        if record.revoked_at is not None:
            until = leaves = record.revoked_at
        rows.append(
            (
                record.kid,
                record.alg,
                table.state(record, now).value,
                _when(record.created_at),
                _when(signs_from),
                _when(until),
                _when(leaves),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    typer.echo("")
    typer.echo(_timeline(doc.keys, table, now))
    if table.rotation_overdue(now):
        typer.echo("rotation overdue: the signing key has passed its period; run scripts/rotate_keys.py")


def _timeline(keys, table: Timetable, now: float, width: int = 60) -> str:  # type: ignore[no-untyped-def]
    """A small text picture: '.' published, '#' signing, '^' now."""
    if not keys:
        return ""
    start = min(k.created_at for k in keys)
    ends = [table.unpublish_at(k.kid) for k in keys if not math.isinf(table.unpublish_at(k.kid))]
    end = max([now + table.lifetimes.rotation_period, *ends])
    span = max(end - start, 1.0)

    def col(ts: float) -> int:
        return max(0, min(width - 1, int((min(ts, end) - start) / span * (width - 1))))

    lines = []
    for record in sorted(keys, key=lambda k: (k.sign_from, k.created_at)):
        cells = [" "] * width
        leaves = record.revoked_at if record.revoked_at is not None else table.unpublish_at(record.kid)
        signs_until = record.revoked_at if record.revoked_at is not None else table.sign_until(record.kid)
        for i in range(col(record.created_at), col(leaves) + 1):
            cells[i] = "."
        if record.kid in table.slots:
            for i in range(col(record.sign_from), col(min(signs_until, end)) + 1):
                cells[i] = "#"
        lines.append(f"{record.kid[:12]}  |{''.join(cells)}|")
    marker = [" "] * width
    marker[col(now)] = "^"
    lines.append(f"{'now':12}  |{''.join(marker)}|   '.' published  '#' signing")
    return "\n".join(lines)


def cron_main(argv: list[str] | None = None) -> int:
    """scripts/rotate_keys.py: exit 0 done (changes printed), 1 error, 2 usage."""
    import argparse

    from authsvc.errors import AuthsvcError
    from authsvc.private_files import restrict_umask

    restrict_umask()  # the script's first act: keys, temporaries and locks are private
    parser = argparse.ArgumentParser(prog="rotate_keys.py", description="Rotate authsvc signing keys (cron).")
    parser.add_argument("--force", action="store_true", help="publish a successor now unless one is pending")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    args = parser.parse_args(argv)
    try:
        for line in rotation_run(get_settings(), force=args.force, dry_run=args.dry_run):
            print(line)
    except AuthsvcError as exc:
        sys.stderr.write(f"rotate_keys: {exc}\n")
        return 1
    except Exception as exc:  # anything else: one line, never a traceback
        sys.stderr.write(f"rotate_keys: unexpected error: {type(exc).__name__}\n")
        return 1
    return 0
