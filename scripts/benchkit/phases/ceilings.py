"""The ceilings: a bare FastAPI app served like authsvc, doing only the unavoidable part of each route.

Constant bytes (the JWKS body) for GET routes, a raw-body form POST for POST
routes, ``request.form()`` when python-multipart is installed, and a route that
only decodes authsvc's access token with PyJWT, the ceiling of /users/me. The
shared rows are measured once (with the first algorithm); the PyJWT row per
algorithm.
"""

from __future__ import annotations

import json

from benchkit.context import Bench
from benchkit.load import Load
from benchkit.report import Row
from benchkit.seeding import AuthsvcServer
from benchkit.servers import Proc, start_bare

__all__ = ["run"]

_POST = {"Content-Type": "application/x-www-form-urlencoded"}
_FORM_BODY = "grant_type=client_credentials&scope=read%20write"


def run(bench: Bench, alg: str, server: AuthsvcServer, jwks_body: bytes, access: str, first: bool) -> None:
    workdir = bench.tmp / f"bare-{alg.lower()}"
    workdir.mkdir()
    (workdir / "bytes.bin").write_bytes(jwks_body)
    config = {
        "bytes_file": str(workdir / "bytes.bin"),
        "alg": alg,
        "jwk": json.loads(jwks_body)["keys"][0],
        "issuer": server.url,
        "audience": "authsvc",
    }
    proc = start_bare(bench.procs, bench.cores, f"bare-{alg}", workdir, config)
    try:
        bearer = {"Authorization": f"Bearer {access}"}
        form_ok = _check_and_warm(bench, proc, bearer)
        if first:
            _shared_rows(bench, proc, form_ok)
        bench.measure(
            f"{alg}.ceiling.pyjwt_me",
            f"bare FastAPI GET, PyJWT decode of the access token ({alg})",
            "GET",
            Load(proc.url + "/pyjwt/me", headers=bearer),
            proc=proc,
            ceiling="ceiling.get_bytes",
        )
    finally:
        bench.procs.stop(proc)


def _check_and_warm(bench: Bench, proc: Proc, bearer: dict[str, str]) -> bool:
    """Whether request.form() works (python-multipart); the PyJWT route must accept the token."""
    import httpx

    with httpx.Client(base_url=proc.url, timeout=10) as client:
        form_ok = client.post("/form", data={"a": "b"}).status_code == 200
        check = client.get("/pyjwt/me", headers=bearer)
        if check.status_code != 200:
            raise RuntimeError(f"PyJWT ceiling route refused the token: {check.text[:200]}")
        for _ in range(bench.profile.warmup_requests):
            client.get("/bytes")
            client.post("/raw", content="a=b")
            client.get("/pyjwt/me", headers=bearer)
    return form_ok


def _shared_rows(bench: Bench, proc: Proc, form_ok: bool) -> None:
    bench.measure(
        "ceiling.get_bytes",
        "bare FastAPI GET, constant bytes (the JWKS body)",
        "GET",
        Load(proc.url + "/bytes"),
        proc=proc,
    )
    bench.measure(
        "ceiling.post_raw",
        "bare FastAPI POST, raw body + parse_qsl",
        "POST",
        Load(proc.url + "/raw", method="POST", headers=_POST, body=_FORM_BODY),
        proc=proc,
    )
    if form_ok:
        bench.measure(
            "ceiling.post_form",
            "bare FastAPI POST, Starlette request.form()",
            "POST",
            Load(proc.url + "/form", method="POST", headers=_POST, body=_FORM_BODY),
            proc=proc,
        )
    else:
        bench.report.add(
            Row(
                "ceiling.post_form",
                "bare FastAPI POST, Starlette request.form()",
                "POST",
                note="skipped: python-multipart is not installed",
            )
        )
