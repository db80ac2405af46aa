"""The benchmark's one table: each request against its floor, with the goals of issue 16."""

from __future__ import annotations

from typing import Any

READS = [
    "patient_search", "day_view", "series_detail", "session_detail", "eligibility",
    "tip_lot_usage", "audit_events", "availability",
]  # fmt: skip
WRITES = ["booking", "treatment"]
ENDPOINTS = READS + WRITES

GOAL_READ = 1.5  # p50 against the floor, every GET
GOAL_WRITE = 2.0  # p50 against the floor, booking and treatment
GOAL_GROWTH = 1.3  # p50 at the large set against the small one
GOAL_WRITE_THROUGHPUT = 0.5  # 8-client throughput of writes against the floor's
GOAL_EXPORT = 0.9  # tip-usage export rows/s against psql \copy


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def table(large: dict[str, Any], small: dict[str, Any]) -> str:
    lat, thr = large["latency"], large["throughput"]
    size = f"{large['dataset']['sessions']:,} sessions, {large['dataset']['clinics']} clinics"
    lines = [
        f"Large set: {size}; small set: {small['dataset']['sessions']:,} sessions, 1 clinic.",
        "p50/p95 in ms through gunicorn, one client, API and floor interleaved; q = statements"
        " per request; rps = 8 clients at once.",
        "",
        f"{'request':<16}{'p50 api':>9}{'p50 floor':>10}{'ratio':>7}{'goal':>6}{'':>5}"
        f"{'p95 api':>9}{'p95 floor':>10}{'q api':>7}{'q floor':>8}"
        f"{'rps api':>9}{'rps floor':>10}{'ratio':>7}{'':>5}"
        f"{'p50 small':>10}{'growth':>7}{'':>5}",
    ]
    for name in ENDPOINTS:
        api, floor = lat.get(f"{name}/api"), lat.get(f"{name}/floor")
        if not api or not floor:
            lines.append(f"{name:<16} (no figures: see failures)")
            continue
        goal = GOAL_WRITE if name in WRITES else GOAL_READ
        ratio = api["p50_ms"] / floor["p50_ms"]
        t_api, t_floor = thr.get(f"{name}/api"), thr.get(f"{name}/floor")
        t_ratio = t_api["rps"] / t_floor["rps"] if t_api and t_floor else float("nan")
        t_mark = _mark(t_ratio >= GOAL_WRITE_THROUGHPUT) if name in WRITES else ""
        s_api = small["latency"].get(f"{name}/api")
        growth = api["p50_ms"] / s_api["p50_ms"] if s_api else float("nan")
        q_api = "/".join(str(q) for q in api["queries"])
        q_floor = "/".join(str(q) for q in floor["queries"])
        lines.append(
            f"{name:<16}{api['p50_ms']:>9.1f}{floor['p50_ms']:>10.1f}{ratio:>7.2f}{goal:>6.1f}"
            f"{_mark(ratio <= goal):>5}{api['p95_ms']:>9.1f}{floor['p95_ms']:>10.1f}"
            f"{q_api:>7}{q_floor:>8}"
            f"{t_api['rps'] if t_api else 0:>9.0f}{t_floor['rps'] if t_floor else 0:>10.0f}"
            f"{t_ratio:>7.2f}{t_mark:>5}"
            f"{s_api['p50_ms'] if s_api else 0:>10.1f}{growth:>7.2f}"
            f"{_mark(growth <= GOAL_GROWTH):>5}"
        )
    if "export" in large:
        export = large["export"]
        ratio = export["psql_s"] / export["http_s"]
        lines += [
            "",
            f"tip-usage export, large clinic: {export['rows']:,} rows; HTTP"
            f" {export['http_s']:.2f} s ({export['rows'] / export['http_s']:,.0f} rows/s),"
            f" psql \\copy of the same SELECT {export['psql_s']:.2f} s;"
            f" ratio {ratio:.2f} (goal >= {GOAL_EXPORT}) {_mark(ratio >= GOAL_EXPORT)}",
        ]
    lines += [
        "",
        f"Goals: GET p50 <= {GOAL_READ}x floor, booking/treatment <= {GOAL_WRITE}x; growth (large"
        f" p50 / small p50) <= {GOAL_GROWTH}; write throughput >= {GOAL_WRITE_THROUGHPUT}x floor;"
        " constant query count (one figure per cell above).",
    ]
    for label, figures in (("large", large), ("small", small)):
        for failure in figures.get("failures", []):
            lines.append(f"failure ({label}): {failure}")
    return "\n".join(lines)
