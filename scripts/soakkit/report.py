"""The run's outputs: ``ledger.json`` (every event), ``summary.md`` (the figures), ``resources.png``."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from soakkit.ledger import Ledger, Verdict
from soakkit.plot import plot_series

__all__ = ["figures", "write_outputs"]

_HTTP_KINDS_EXCLUDED_FROM_LATENCY = {"rotate"}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(ledger: Ledger, verdict: Verdict, started: float, ended: float) -> dict[str, Any]:
    requests: dict[str, Counter[str]] = defaultdict(Counter)
    for a in ledger.answers:
        outcome = "no answer" if a.status is None else f"{a.status // 100}xx"
        requests[a.kind][outcome] += 1
    latency: dict[str, list[float]] = defaultdict(list)
    for a in ledger.answers:
        if a.kind in _HTTP_KINDS_EXCLUDED_FROM_LATENCY or a.status is None or a.status >= 500:
            continue
        if not ledger.in_fault(a.t0, a.t1):
            latency[a.kind].append((a.t1 - a.t0) * 1000)
            latency["all"].append((a.t1 - a.t0) * 1000)
    verified: dict[str, Counter[str]] = defaultdict(Counter)
    for v in ledger.verifications:
        token = ledger.issued.get(v.token_id)
        if v.ok:
            verified[v.verifier]["accepted"] += 1
        elif token is not None and token.kid in ledger.revoked_kids:
            verified[v.verifier]["refused: key revoked"] += 1
        else:
            verified[v.verifier]["refused: other"] += 1
    purposes: Counter[str] = Counter()
    for r in ledger.refreshes:
        outcome = "no answer" if r.status is None else str(r.status)
        purposes[f"{r.deliberate or 'step or retry'} -> {outcome}"] += 1
    signing_kids = {i.kid for i in ledger.issued.values()}
    resources = {}
    for name, series in ledger.series().items():
        resources[name] = {
            "seconds": round(series[-1].t - series[0].t),
            "rss_mib": [
                round(series[0].rss_kib / 1024, 1),
                round(max(s.rss_kib for s in series) / 1024, 1),
                round(series[-1].rss_kib / 1024, 1),
            ],
            "fds": [series[0].fds, max(s.fds for s in series), series[-1].fds],
        }
    return {
        "minutes": round((ended - started) / 60, 1),
        "clean": verdict.clean,
        "requests": {k: dict(v) for k, v in sorted(requests.items())},
        "requests_total": len(ledger.answers),
        "faults": dict(Counter(f.kind for f in ledger.faults)),
        "keys_that_signed": len(signing_kids),
        "rotations_survived": max(0, len(signing_kids) - 1),
        "rotation_script_changes": len(ledger.rotations),
        "keys_revoked": len(ledger.revoked_kids),
        "access_tokens_issued": len(ledger.issued),
        "verifications": {k: dict(v) for k, v in sorted(verified.items())},
        "failures_by_cause": dict(verdict.by_cause()),
        "chains_broken_by_named_faults": dict(verdict.named_breaks),
        "refresh_attempts": len(ledger.refreshes),
        "refresh_attempts_by_purpose": dict(sorted(purposes.items())),
        "revocation_probes": len(ledger.probes),
        "recovery_seconds": {
            kind: {"n": len(v), "median": round(statistics.median(v), 2), "max": round(max(v), 2)}
            for kind, v in sorted(verdict.recovery.items())
        },
        "latency_ms_outside_faults": {
            kind: {"n": len(v), "p50": round(_percentile(v, 0.5), 1), "p99": round(_percentile(v, 0.99), 1)}
            for kind, v in sorted(latency.items())
        },
        "resources": resources,
    }


def _markdown(fig: dict[str, Any], verdict: Verdict) -> str:
    lines = [
        f"# authsvc chaos soak: {fig['minutes']} minutes, ledger {'CLEAN' if fig['clean'] else 'NOT CLEAN'}",
        "",
        f"Requests: {fig['requests_total']}; access tokens issued: {fig['access_tokens_issued']}; "
        f"keys that signed: {fig['keys_that_signed']} ({fig['rotations_survived']} rotations survived; "
        f"{fig['rotation_script_changes']} changes printed by rotate_keys.py); "
        f"keys revoked: {fig['keys_revoked']}.",
        "",
        "| requests by kind | 2xx | 3xx | 4xx | 5xx | no answer |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, counts in fig["requests"].items():
        lines.append(
            f"| {kind} | {counts.get('2xx', 0)} | {counts.get('3xx', 0)} | {counts.get('4xx', 0)} "
            f"| {counts.get('5xx', 0)} "
            f"| {counts.get('no answer', 0)} |"
        )
    lines += [
        "",
        "| verifier | accepted | refused, key revoked (expected) | refused, other |",
        "|---|---:|---:|---:|",
    ]
    for name, counts in fig["verifications"].items():
        lines.append(
            f"| {name} | {counts.get('accepted', 0)} | {counts.get('refused: key revoked', 0)} "
            f"| {counts.get('refused: other', 0)} |"
        )
    lines += ["", "| refresh attempts by purpose -> status | n |", "|---|---:|"]
    for purpose, n in fig["refresh_attempts_by_purpose"].items():
        lines.append(f"| {purpose} | {n} |")
    lines += ["", "| fault | injected | recovery median (s) | recovery max (s) |", "|---|---:|---:|---:|"]
    for kind, n in sorted(fig["faults"].items()):
        rec = fig["recovery_seconds"].get(kind, {})
        lines.append(f"| {kind} | {n} | {rec.get('median', '-')} | {rec.get('max', '-')} |")
    lines += ["", "| latency outside faults (ms) | n | p50 | p99 |", "|---|---:|---:|---:|"]
    for kind, lat in fig["latency_ms_outside_faults"].items():
        lines.append(f"| {kind} | {lat['n']} | {lat['p50']} | {lat['p99']} |")
    lines += [
        "",
        "Refresh chains ended by a named fault (not failures): "
        + (", ".join(f"{k} {v}" for k, v in fig["chains_broken_by_named_faults"].items()) or "none"),
        "",
    ]
    lines += [
        "| process | seconds | RSS MiB first / max / last | fds first / max / last |",
        "|---|---:|---|---|",
    ]
    for name, r in sorted(fig["resources"].items()):
        rss, fds = " / ".join(map(str, r["rss_mib"])), " / ".join(map(str, r["fds"]))
        lines.append(f"| {name} | {r['seconds']} | {rss} | {fds} |")
    lines += ["", "## Failures by cause", ""]
    if verdict.clean:
        lines.append("None: the ledger is clean.")
    else:
        for cause, n in verdict.by_cause().most_common():
            lines.append(f"- **{cause}**: {n}")
            for failure in [f for f in verdict.failures if f.cause == cause][:5]:
                lines.append(f"  - {failure.detail}")
    return "\n".join(lines) + "\n"


def write_outputs(
    out: Path, ledger: Ledger, verdict: Verdict, started: float, ended: float
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    fig = figures(ledger, verdict, started, ended)
    (out / "ledger.json").write_text(
        json.dumps(
            {"figures": fig, "failures": [_failure(f) for f in verdict.failures], "events": ledger.to_json()},
        )
    )
    (out / "summary.md").write_text(_markdown(fig, verdict))
    series = {
        name: [(s.t, s.rss_kib / 1024, float(s.fds)) for s in points]
        for name, points in ledger.series().items()
    }
    plot_series(out / "resources.png", series, [f.start for f in ledger.faults], started)
    return fig


def _failure(f: Any) -> dict[str, Any]:
    return {"cause": f.cause, "detail": f.detail, "t": f.t}
