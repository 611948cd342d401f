"""The bench's DPoP rows, their parts that need no server: the proofs it signs ahead (checked by
authsvc's own proof check), sending each proof once (wrk's Lua script, wrk itself when installed, and
the httpx generator), and the cost target computed from the rows' server CPU.
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from benchkit.cores import Cores
from benchkit.dpop_proofs import access_token_hash, new_proof_key, sign_proofs
from benchkit.load import HttpxGenerator, Load, WrkGenerator, lua_script
from benchkit.report import Report, Row
from benchkit.targets import DPOP_SHARE, dpop_cost, targets

from authsvc.dpop import DpopError, check_proof
from tests.dpop_support import thumbprint

URL = "http://127.0.0.1:9/users/me"


@pytest.mark.parametrize("alg", ["RS256", "EdDSA", "ES256"])
def test_signed_proofs_pass_authsvcs_check_each_with_its_own_jti(alg: str) -> None:
    key = new_proof_key(alg)
    pool = sign_proofs(key, "GET", URL, 20, access_token="tok.en.x")
    assert len(pool) == 20
    assert key.jkt == thumbprint(key.jwk)
    checked = [
        check_proof(proof, method="GET", url=URL, now=pool.signed_at, skew=60, access_token="tok.en.x")
        for proof in pool.proofs
    ]
    assert {proof.jkt for proof in checked} == {key.jkt}
    assert len({proof.jti for proof in checked}) == 20
    assert all(abs(proof.iat - pool.signed_at) <= 1 for proof in checked)
    with pytest.raises(DpopError, match="ath"):
        check_proof(pool.proofs[0], method="GET", url=URL, now=pool.signed_at, skew=60, access_token="other")
    with pytest.raises(DpopError, match="htm"):
        check_proof(pool.proofs[0], method="POST", url=URL, now=pool.signed_at, skew=60)


def test_access_token_hash_is_rfc9449s() -> None:
    # RFC 9449 §7.1's example: the access token and its ath.
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


def test_lua_script_sends_one_proof_per_request(tmp_path: Path) -> None:
    proofs = tmp_path / "p.proofs"
    get = lua_script(Load("http://x/users/me", proofs=["a.b.c"]), None, None, proofs)
    assert get.count("[====[DPoP]====]") == 1  # not a fixed header: set per request
    assert "wrk.headers[ [====[DPoP]====] ] = p" in get
    assert "return wrk.format()" in get
    chained = lua_script(
        Load("http://x/token", method="POST", chain_tokens=["t"], proofs=["a.b.c"]),
        tmp_path / "q",
        None,
        proofs,
    )
    assert "wrk.headers[ [====[DPoP]====] ] = p" in chained
    assert "return wrk.format(nil, nil, nil, prefix .. t)" in chained
    assert "queue[tail] = t" in chained


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        proof = self.headers.get("DPoP", "")
        self.server.seen.append((proof, body))  # type: ignore[attr-defined]
        self.send_response(200 if proof.startswith("proof-") else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_httpx_generator_sends_each_proof_once(recorder: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{recorder.server_address[1]}/token"
    proofs = [f"proof-{i}" for i in range(30)]
    load = Load(url, method="POST", body="grant_type=client_credentials", proofs=proofs, max_requests=30)
    result = HttpxGenerator(3).run(load, 10)
    seen = recorder.seen  # type: ignore[attr-defined]
    assert sorted(proof for proof, _ in seen if proof != "exhausted") == sorted(proofs)
    assert {body for _, body in seen} == {"grant_type=client_credentials"}
    assert result.errors == [proof for proof, _ in seen].count("exhausted")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_sends_each_proof_once_then_runs_out(recorder: ThreadingHTTPServer, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{recorder.server_address[1]}/users/me"
    proofs = [f"proof-{i}" for i in range(50)]
    generator = WrkGenerator(Cores(), 2, tmp_path)
    result = generator.run(Load(url, headers={"Authorization": "DPoP t"}, proofs=proofs), 1)
    sent = [proof for proof, _ in recorder.seen]  # type: ignore[attr-defined]
    used = [p for p in sent if p != "exhausted"]
    # Each sent once; wrk's thread formats one request (the first proof) before it connects.
    assert len(set(used)) == len(used) >= len(proofs) - 1
    assert set(used) <= set(proofs)
    # wrk counts the answers it read before its time was up; the server may have seen a request
    # per connection more (sent as the run ended, its answer never read).
    assert len(sent) - 4 <= result.requests <= len(sent)
    exhausted = sent.count("exhausted")
    assert exhausted > 0 and exhausted - 4 <= result.errors <= exhausted


def _row(row_id: str, rps: float, cpu_ms: float | None = None) -> Row:
    return Row(id=row_id, label=row_id, kind="inproc", rps=rps, cpu_ms=cpu_ms)


def test_dpop_target_is_one_verify_plus_a_few_per_cent_of_the_bearer_request() -> None:
    report = Report()
    report.rows += [
        _row("EdDSA.inproc.raw_verify", 10_000.0),  # 0.1 ms
        _row("EdDSA.client_credentials", 2000.0, cpu_ms=0.5),
        _row("EdDSA.client_credentials.dpop", 1500.0, cpu_ms=0.5 + 0.1 + DPOP_SHARE * 0.5 - 0.001),
        _row("EdDSA.refresh", 1000.0, cpu_ms=1.0),
        _row("EdDSA.refresh.dpop", 500.0, cpu_ms=2.0),
    ]
    cost = dpop_cost(report, "EdDSA", "refresh")
    assert cost is not None
    assert cost["extra_ms"] == pytest.approx(1.0)
    assert cost["verify_ms"] == pytest.approx(0.1)
    found = {t.name.split(" DPoP")[0]: t for t in targets(report, ("EdDSA",), peer_measured=False)}
    assert found["EdDSA client_credentials"].status == "PASS"
    assert "Strict reading (≤ 1.05 verify): MISS" in found["EdDSA client_credentials"].detail
    assert found["EdDSA refresh"].status == "MISS"
    assert found["EdDSA refresh"].measured == pytest.approx(10.0)  # in verifies
    assert found["EdDSA users_me"].status == "n/a"


# --- a chained row that ran out of proofs -------------------------------------------------------
class _FakeBench:
    """Just what ``phases.dpop._measure`` reads; each run "sends" ``sent`` requests."""

    def __init__(self, sent: list[int]) -> None:
        from types import SimpleNamespace

        self.profile = SimpleNamespace(duration=1.0, connections=2)
        self.generator = SimpleNamespace(name="httpx")
        self.report = Report()
        self.loads: list[Load] = []
        self._sent = sent

    def measure(self, row_id: str, label: str, kind: str, load: Load, **_kw: Any) -> Row:
        self.loads.append(load)
        row = Row(row_id, label, kind, rps=1.0, requests=self._sent[len(self.loads) - 1])
        self.report.rows.append(row)
        return row


def _chained_measure(bench: _FakeBench, chains: Any) -> Row:
    from benchkit.dpop_proofs import ProofPool
    from benchkit.phases import dpop as phase

    return phase._measure(
        bench,  # type: ignore[arg-type]
        "EdDSA.refresh.dpop",
        "label",
        "POST",
        None,  # type: ignore[arg-type]
        lambda n: ProofPool([f"p{i}" for i in range(n)], 0.0, 0.0),
        lambda proofs: Load("http://x/token", method="POST", chain_tokens=chains.next(), proofs=proofs),
        10.0,
        60,
        "",
        chains,
    )


def test_a_chained_row_tries_again_only_on_families_it_has_not_spent() -> None:
    from benchkit.phases.dpop import _ChainPools

    bench = _FakeBench(sent=[10**6, 5])  # the first run used up its proofs
    fresh = [["fresh-1", "fresh-2"]]
    row = _chained_measure(bench, _ChainPools(["first-1", "first-2"], lambda: fresh.pop()))
    assert row.requests == 5 and len(bench.loads) == 2
    assert bench.loads[0].chain_tokens == ["first-1", "first-2"]
    assert bench.loads[1].chain_tokens == ["fresh-1", "fresh-2"], "expected unspent families the second time"


def test_a_chained_row_without_fresh_families_keeps_its_first_run() -> None:
    from benchkit.phases.dpop import _ChainPools

    bench = _FakeBench(sent=[10**6])
    row = _chained_measure(bench, _ChainPools(["only-1"], None))
    assert len(bench.loads) == 1 and row.requests == 10**6
