"""What software a run measured with: package versions, wrk, node and oidc-provider, uvicorn's stack."""

from __future__ import annotations

import json
import shutil
import subprocess

from benchkit.config import PEER_DIR

__all__ = ["uvicorn_stack", "versions"]

_PACKAGES = ("authsvc", "fastapi", "starlette", "uvicorn", "sqlalchemy", "joserfc", "cryptography", "PyJWT")


def uvicorn_stack() -> str:
    """What uvicorn's "auto" picks here: it bounds every Python row, ceilings included."""
    from importlib.util import find_spec

    http = "httptools" if find_spec("httptools") else "h11 (httptools not installed)"
    loop = "uvloop" if find_spec("uvloop") else "asyncio (uvloop not installed)"
    return f"uvicorn http={http}, loop={loop}"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        found["wrk"] = (out.stdout + out.stderr).split("\n")[0].split(" [")[0]
    if shutil.which("node"):
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
        found["node"] = out.stdout.strip()
        package = PEER_DIR / "node_modules" / "oidc-provider" / "package.json"
        if package.is_file():
            found["oidc-provider"] = json.loads(package.read_text()).get("version", "?")
    return found
