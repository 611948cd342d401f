"""The ``authsvc`` console script: a private umask, and one clear line when the server extras are missing."""

from __future__ import annotations

import sys

from authsvc.private_files import restrict_umask

__all__ = ["main"]


def main() -> None:
    restrict_umask()  # first: nothing this process creates is readable by other users
    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
        import typer  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        sys.stderr.write("authsvc: the service needs its extras: pip install 'authsvc[server]'\n")
        raise SystemExit(1) from None
    from authsvc.cli import run

    run()
