"""scripts/bench_profile.py's summary of a py-spy raw profile (the recording itself needs py-spy)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_profile


def test_summary_leaves_out_idle_waits_and_groups_the_rest(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "\n".join(
            [
                "main;Runner.run (asyncio/runners.py:118) 50",  # the loop waiting in epoll
                "t;_worker (concurrent/futures/thread.py:81) 30",  # an idle worker thread
                "t;_worker (concurrent/futures/thread.py:83);ThreadedDatabase._begin (authsvc/store/sql/"
                "threaded.py:51);Connection.execute (sqlalchemy/engine/base.py:1494) 6",
                "t;ThreadedDatabase._begin (authsvc/store/sql/threaded.py:51);TokenIssuer.session_tokens "
                "(authsvc/tokens/issuer.py:118);_RSAAlgModel.sign (joserfc/_rfc7518/jws_algs.py:97) 3",
                "main;check_token (authsvc/tokens/validation.py:127);loads (json/__init__.py:346) 1",
            ]
        )
        + "\n"
    )
    summary = bench_profile.summarise_py_spy(raw)
    assert "busy samples 10 (left out: 80 idle waits)" in summary
    lines = {" ".join(line.split()) for line in summary.splitlines()}
    assert "90.0 % database transaction, on its worker thread" in lines
    assert "30.0 % of it: signing the new tokens" in lines
    assert "10.0 % check the presented refresh token" in lines
    assert "60.0 % SQLAlchemy, and SQLite called from it" in lines
    assert "30.0 % signature maths (cryptography, called from joserfc)" in lines
    assert "10.0 % json, logging, other stdlib" in lines
