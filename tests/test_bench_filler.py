"""The bench's growth filler (scripts/benchkit/filler.py) writes rows that authsvc itself reads as live
sessions, on the schema's current head (migrated by the CLI), on SQLite and PostgreSQL; and it is
driven by the table metadata: a column the filler would leave wrong stops it, naming the column.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Column, MetaData, String, Table

from authsvc.store.sql.tables import refresh_tokens, sessions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from benchkit.filler import SESSION_COLUMNS, TOKEN_COLUMNS, FillerDb, missing_columns


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from authsvc.cli_entry import main; main()", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_filler_rows_are_live_sessions_to_authsvc(database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AUTHSVC_")}
    env.update(
        {
            "AUTHSVC_DATABASE_URL": database_url,
            "AUTHSVC_KEYS_DIR": str(tmp_path / "keys"),
            "AUTHSVC_ARGON2_MEMORY_KIB": "64",
            "AUTHSVC_ARGON2_TIME_COST": "1",
        }
    )
    _cli(env, "db", "upgrade")
    # Typed in mixed case, as an operator might: authsvc stores the PRECIS-mapped name.
    _cli(env, "users", "add", "Filler-User", "--password-stdin", stdin="long enough password\n")
    prefix = "s_fill_test_"
    filler = FillerDb(database_url, prefix)
    filler.BATCH = 50  # several batches, each its own transaction
    try:
        assert filler.fill_to(120, "Filler-User", "bench-client", "kid-1") == 120
        assert filler.fill_to(120, "Filler-User", "bench-client", "kid-1") == 0
        assert filler.fill_to(130, "Filler-User", "bench-client", "kid-1") == 10

        listed = _cli(env, "users", "sessions", "filler-user").splitlines()
        assert len(listed) == 130
        assert all(line.startswith(prefix) and "\tclient bench-client\t" in line for line in listed)
        assert all(line.endswith("\tread write") for line in listed)

        filler.cleanup()  # PostgreSQL: the scratch database keeps no filler rows; SQLite: nothing
        left = _cli(env, "users", "sessions", "filler-user").splitlines()
        assert len(left) == (130 if database_url.startswith("sqlite") else 0)
    finally:
        filler.close()


def test_filler_columns_cover_the_current_head() -> None:
    assert missing_columns(sessions, SESSION_COLUMNS) == []
    assert missing_columns(refresh_tokens, TOKEN_COLUMNS) == []


@pytest.mark.parametrize(
    ("column", "missing"),
    [
        (Column("tenant", String(20), nullable=False), ["tenant"]),
        (Column("flagged", Boolean, nullable=True, default=False), ["flagged"]),  # default only in Python
        (Column("tenant", String(20), nullable=False, server_default="t"), []),
        (Column("note", String(20)), []),
    ],
)
def test_a_new_column_the_filler_would_get_wrong_is_named(column: Column[object], missing: list[str]) -> None:
    copy = sessions.to_metadata(MetaData())
    copy.append_column(column)
    assert missing_columns(copy, SESSION_COLUMNS) == missing


def test_a_column_the_table_lacks_is_refused() -> None:
    table = Table("sessions", MetaData(), Column("id", String(64), primary_key=True))
    with pytest.raises(RuntimeError, match="user_id"):
        missing_columns(table, SESSION_COLUMNS)
