"""A report as ``bench.md`` (grouped tables, authsvc ÷ peer, targets) and ``bench.json`` (strict JSON)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchkit.config import ALGS, ANCHORS_FILE
from benchkit.report import Report, fmt_ms, fmt_ratio, join_notes, rate
from benchkit.targets import DPOP_ROWS, dpop_cost, is_rounds_row, refresh_row, refresh_rows

__all__ = ["GROUPS", "group_of", "markdown", "write_outputs"]

GROUPS = (
    "In-process (ops/s; ceiling: raw cryptography)",
    "Load generator ceiling (a static responder on the server core)",
    "Ceilings: a bare FastAPI app served like authsvc",
    "authsvc",
    "Password grant and browser sign-in (argon2-bound, reported apart)",
    "Peer: node-oidc-provider",
    "Event loop, growth, memory",
)


def group_of(row_id: str) -> str:
    parts = row_id.split(".")
    if "inproc" in parts or row_id == "argon2.hash":
        return GROUPS[0]
    if parts[0] == "generator":
        return GROUPS[1]
    if "ceiling" in parts:
        return GROUPS[2]
    if parts[0] in ("eventloop", "growth", "memory"):
        return GROUPS[6]
    if "peer" in parts or "peer_redis" in parts:
        return GROUPS[5]
    if parts[-1] in ("password", "signin"):
        return GROUPS[4]
    return GROUPS[3]


def markdown(report: Report) -> str:
    lines = [*_header(report.meta)]
    for title in GROUPS:
        rows = [row for row in report.rows if group_of(row.id) == title]
        if not rows:
            continue
        lines += [
            "",
            f"### {title}",
            "",
            "| row | what | req/s (ops/s) | p50 ms | p99 ms | ceiling | x req/s | x p50 | x p99 "
            "| RSS MiB | notes |",
            "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
        ]
        for row in rows:
            shown = "-" if row.rps is None else f"{row.rps:,.0f}"
            if row.generator_bound:
                ratios = ["gen-bound", "gen-bound", "gen-bound"]
            else:
                ratios = [fmt_ratio(row.ratio_rps), fmt_ratio(row.ratio_p50), fmt_ratio(row.ratio_p99)]
            notes = join_notes(row.note, f"{row.errors} errors of {row.requests}" if row.errors else "")
            rss = "-" if row.rss_mib is None else f"{row.rss_mib:.1f}"
            lines.append(
                f"| {row.id} | {row.label} | {shown} | {fmt_ms(row.p50_ms)} | {fmt_ms(row.p99_ms)} | "
                f"{row.ceiling or '-'} | {' | '.join(ratios)} | {rss} | {notes} |"
            )
    lines += _peer_table(report)
    lines += _refresh_table(report)
    lines += _dpop_table(report)
    lines += [
        "",
        "## Targets",
        "",
        "| target | measured | needed | status | detail |",
        "|---|---:|---:|---|---|",
    ]
    for target in report.targets:
        measured = "-" if target.measured is None else f"{target.measured:.2f}x"
        needed = (
            "-"
            if target.threshold is None
            else (f"≥ {target.threshold:.2f}x" if "≤" not in target.name else f"≤ {target.threshold:.2f}x")
        )
        lines.append(f"| {target.name} | {measured} | {needed} | {target.status} | {target.detail} |")
    return "\n".join(lines) + "\n"


def _header(meta: dict[str, Any]) -> list[str]:
    return [
        f"# authsvc bench ({meta.get('mode')}, {meta.get('started')})",
        "",
        f"- machine: {meta.get('machine')}; Python {meta.get('python')}",
        f"- pinning: {meta.get('pinning')}",
        f"- generator: {meta.get('generator')}",
        f"- load runs: {meta.get('duration_s')} s each, {meta.get('connections')} connections; "
        f"database: {meta.get('database')}",
        f"- password hashing: {meta.get('argon2')}",
        f"- refresh method: {meta.get('refresh_method')}",
        f"- code method: {meta.get('code_method')}",
        f"- peer (node-oidc-provider): {meta.get('peer')}; on its Redis adapter: {meta.get('peer_redis')}",
        f"- authsvc on PostgreSQL: {meta.get('postgres')}",
        f"- growth rows: {meta.get('growth_rows')}; memory refreshes: {meta.get('memory_refreshes')}",
        f"- servers: {meta.get('server_settings')}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items())}",
        f"- elapsed: {meta.get('elapsed_s')} s",
        *([f"- **incomplete run**: {meta['incomplete']}"] if meta.get("incomplete") else []),
        "",
        "Ratios are to the row's ceiling: the bare FastAPI GET (constant bytes) for GET routes, the bare "
        "FastAPI raw-body form POST for POST routes, raw `cryptography` for in-process rows. "
        "`gen-bound`: the generator's own ceiling is under 1.5x the rate, so no ratio is given.",
    ]


def _peer_table(report: Report) -> list[str]:
    peer_rows = [
        (alg, what)
        for alg in ALGS
        for what in ("jwks", "client_credentials", "refresh", "authorization_code")
        if report.get(f"{alg}.peer.{what}") is not None
    ]
    if not peer_rows:
        return [
            "",
            f"Peer not measured in this run ({report.meta.get('peer')}). The peer targets below compare "
            f"with the {ANCHORS_FILE} figures, from another run: reference only.",
        ]
    lines = [
        "",
        "## authsvc ÷ peer (node-oidc-provider, measured in this run)",
        "",
        "| alg | what | authsvc req/s | peer req/s | authsvc ÷ peer |",
        "|---|---|---:|---:|---:|",
    ]
    for alg, what in peer_rows:
        ours, theirs = rate(report, f"{alg}.{what}"), rate(report, f"{alg}.peer.{what}")
        ratio = fmt_ratio(ours / theirs) if ours and theirs else "-"
        lines.append(f"| {alg} | {what} | {ours or 0:,.0f} | {theirs or 0:,.0f} | {ratio} |")
        if what == "refresh":
            rot = rate(report, f"{alg}.peer.refresh_rotating")
            if rot:
                ratio = fmt_ratio(ours / rot) if ours else "-"
                lines.append(f"| {alg} | refresh, peer rotating | {ours or 0:,.0f} | {rot:,.0f} | {ratio} |")
        for peer_what, shown in _ON_REDIS.get(what, ()):
            on_redis = rate(report, f"{alg}.peer_redis.{peer_what}")
            if on_redis:
                ratio = fmt_ratio(ours / on_redis) if ours else "-"
                lines.append(f"| {alg} | {shown} | {ours or 0:,.0f} | {on_redis:,.0f} | {ratio} |")
    return lines


#: The peer-on-Redis lines of the authsvc ÷ peer table, after each authsvc row: (peer row, shown as).
_ON_REDIS = {
    "client_credentials": (("client_credentials", "client_credentials, peer on Redis"),),
    "refresh": (
        ("refresh", "refresh, peer on Redis"),
        ("refresh_rotating", "refresh, peer on Redis rotating"),
    ),
}


def _refresh_table(report: Report) -> list[str]:
    """Issue 18: authsvc's rotating refresh on each database beside the peer's, in memory and on Redis,
    with p50 and p99; the last columns are each authsvc row ÷ the line's row."""
    algs = [alg for alg in ALGS if report.get(f"{alg}.refresh") is not None]
    if not algs:
        return []
    ours_header = refresh_rows(report, algs[0])
    lines = [
        "",
        "## Refresh: authsvc on SQLite and PostgreSQL beside node-oidc-provider in memory and on Redis",
        "",
        "Rotating refresh tokens, chained (every request spends the token the server minted moments "
        f"before), {report.meta.get('connections')} connections, each server on one core; the database "
        "and Redis servers are not pinned. Rows `ALG.rounds.*`: the servers side by side, loaded in turn, "
        "each row the median of its rounds (notes: every round's req/s). "
        "Last columns: each authsvc row ÷ the line's row.",
        "",
        "| alg | row | server, storage | req/s | p50 ms | p99 ms | p99 ÷ p50 | notes |"
        + "".join(f" authsvc {db} ÷ this |" for _, db, _ in ours_header),
        "|---|---|---|---:|---:|---:|---:|---|" + "---:|" * len(ours_header),
    ]
    for alg in algs:
        ours = refresh_rows(report, alg)
        entries = [(row_id, f"authsvc, {db}") for row_id, db, _ in ours] + [
            (refresh_row(report, alg, "peer.refresh_rotating"), "node-oidc-provider, in memory"),
            (refresh_row(report, alg, "peer_redis.refresh_rotating"), "node-oidc-provider, Redis"),
        ]
        for row_id, what in entries:
            row = report.get(row_id)
            theirs = rate(report, row_id)
            if row is None or theirs is None:
                shown, spread = "- | - | -", "-"
                note = row.note if row is not None and row.note else "not measured"
            else:
                shown = f"{theirs:,.0f} | {fmt_ms(row.p50_ms)} | {fmt_ms(row.p99_ms)}"
                spread = fmt_ratio(row.p99_ms / row.p50_ms) if row.p50_ms and row.p99_ms else "-"
                rounds = row.note if is_rounds_row(row_id) else ""
                note = join_notes(rounds, "gen-bound" if row.generator_bound else "")
            cells = ""
            for ours_id, _, _ in ours:
                mine = rate(report, ours_id)
                cells += f" {fmt_ratio(mine / theirs) if mine and theirs else '-'} |"
            lines.append(f"| {alg} | {row_id} | {what} | {shown} | {spread} | {note} |{cells}")
    return lines


def _dpop_table(report: Report) -> list[str]:
    """Each DPoP row against its bearer row, the peer's DPoP row, and its extra server CPU."""
    rows = [
        (alg, what, peer)
        for alg in ALGS
        for what, peer in DPOP_ROWS.items()
        if report.get(f"{alg}.{what}.dpop") is not None
    ]
    if not rows:
        return []
    lines = [
        "",
        "## DPoP (RFC 9449): each row against its bearer row and the peer's DPoP row",
        "",
        "Proofs are signed with the row's algorithm (RS256: RSA-2048, EdDSA: Ed25519), one fresh proof per "
        "request, signed before the run. The peer's protected resource is its userinfo endpoint (/me): "
        "node-oidc-provider has no /users/me. Server CPU is user + system time of the server process "
        "(every thread) over the run ÷ responses; `extra` is the DPoP row's over its bearer row's, "
        "`verify` one raw `cryptography` verify of the proof's algorithm (in-process, this run).",
        "",
        "| alg | what | bearer req/s | DPoP req/s | DPoP ÷ bearer | peer DPoP req/s | authsvc ÷ peer DPoP "
        "| peer DPoP ÷ peer bearer | CPU ms bearer → DPoP | extra ms | verify ms | extra ÷ verify "
        "| peer extra ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for alg, what, peer in rows:
        bearer, dpop = rate(report, f"{alg}.{what}"), rate(report, f"{alg}.{what}.dpop")
        peer_bearer, peer_dpop = rate(report, f"{alg}.peer.{peer}"), rate(report, f"{alg}.peer.{peer}.dpop")
        cost = dpop_cost(report, alg, what)
        peer_rows = report.get(f"{alg}.peer.{peer}"), report.get(f"{alg}.peer.{peer}.dpop")
        peer_extra = (
            f"{peer_rows[1].cpu_ms - peer_rows[0].cpu_ms:.3f}"
            if peer_rows[0]
            and peer_rows[1]
            and peer_rows[0].cpu_ms is not None
            and peer_rows[1].cpu_ms is not None
            else "-"
        )
        lines.append(
            f"| {alg} | {what}{' (peer: userinfo)' if what == 'users_me' else ''} | {bearer or 0:,.0f} "
            f"| {dpop or 0:,.0f} | {fmt_ratio(dpop / bearer) if dpop and bearer else '-'} "
            f"| {f'{peer_dpop:,.0f}' if peer_dpop else '-'} "
            f"| {fmt_ratio(dpop / peer_dpop) if dpop and peer_dpop else '-'} "
            f"| {fmt_ratio(peer_dpop / peer_bearer) if peer_dpop and peer_bearer else '-'} "
            + (
                f"| {cost['bearer_ms']:.3f} → {cost['dpop_ms']:.3f} | {cost['extra_ms']:.3f} "
                f"| {cost['verify_ms']:.3f} | {fmt_ratio(cost['extra_ms'] / cost['verify_ms'])} "
                if cost
                else "| - | - | - | - "
            )
            + f"| {peer_extra} |"
        )
    return lines


def write_outputs(report: Report, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "bench.json", out_dir / "bench.md"
    data = _finite(
        {
            "meta": report.meta,
            "rows": [asdict(row) for row in report.rows],
            "targets": [asdict(target) for target in report.targets],
        }
    )
    json_path.write_text(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


def _finite(data: Any) -> Any:
    """NaN and infinities become null: the JSON stays strict."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data
