"""Plain-text summary of one results dict for a terminal (the local `check` command)."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

from reporter.summary import conclude, is_active, sort_violations, workload_counts

MAX_LINES_PER_WORKLOAD = 20
# Database text must not drive the terminal: drop escape sequences and other control characters.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 24


def format_bytes(n: float | None) -> str:
    """1536 -> '1.5 KiB'; None -> '-'. Plain text, shared by every renderer."""
    if n is None:
        return "-"
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{sign}{int(value)} B" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    return f"{sign}{value:.1f} GiB"  # unreachable; keeps type checkers calm


def format_rate(bytes_per_iteration: float | None) -> str:
    return "-" if bytes_per_iteration is None else f"{format_bytes(bytes_per_iteration)}/iter"


def sparkline(samples: List[int] | None) -> str:
    """Unicode-block sparkline of sampled usage, down-sampled to SPARK_POINTS; '' when not sampled."""
    if not samples or len(samples) < 2:
        return ""
    if len(samples) > SPARK_POINTS:
        step = (len(samples) - 1) / (SPARK_POINTS - 1)
        samples = [samples[round(i * step)] for i in range(SPARK_POINTS)]
    lo, hi = min(samples), max(samples)
    if hi == lo:
        return SPARK_BLOCKS[0] * len(samples)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[round((s - lo) * top / (hi - lo))] for s in samples)


def clean(text: str | None, limit: int = 160) -> str:
    if text is None:
        return "-"
    one_line = _CONTROL.sub("", str(text).replace("\r\n", "\n").replace("\n", " | "))
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _counts_text(by_severity: Dict[str, int]) -> str:
    return ", ".join(f"{by_severity[s]} {s}" for s in ("ERROR", "WARNING", "INFO"))


def _group(violations: List[Dict[str, Any]]) -> List[Tuple[Dict[str, Any], int]]:
    """Repeats of one finding (same check, severity, context, library, phase), as the first and a count:
    a workload run N times reports each per-statement finding N times."""
    groups: Dict[Tuple[Any, ...], List[Any]] = {}
    for v in violations:
        key = (v["severity"], v["check_type"], v.get("context_path"), v.get("source_lib"), v.get("phase"))
        if key in groups:
            groups[key][1] += 1
        else:
            groups[key] = [v, 1]
    return [(v, n) for v, n in groups.values()]


def render_terminal(results: Dict[str, Any], fail_on: str | None = None) -> str:
    """A readable report; fail_on defaults to the one recorded in the results."""
    fail_on = fail_on or results.get("fail_on") or "error"
    pg = results["postgresql"]
    lines: List[str] = [
        f"pg-ext-memcheck {clean(results['tool']['version'])} on PostgreSQL {clean(pg['version'])} "
        f"(fail-on: {fail_on})"
    ]
    for w in results["workloads"]:
        counts = workload_counts(w)
        head = f"  {w['status'].upper():<10} {clean(w['name'], 60)}"
        if counts.violations:
            head += f"  [{_counts_text(counts.by_severity)}]"
        if counts.suppressed:
            head += f"  ({counts.suppressed} suppressed)"
        lines.append(head)
        if w.get("error"):
            sqlstate = w["error"].get("sqlstate")
            suffix = f" (SQLSTATE {sqlstate})" if sqlstate else ""
            lines.append(f"      error: {clean(w['error']['message'])}{suffix}")
        if w.get("log_excerpt"):
            for log_line in str(w["log_excerpt"]).splitlines()[:5]:
                lines.append(f"      log: {clean(log_line)}")
        groups = _group(sort_violations([v for v in w["violations"] if is_active(v)]))
        for v, n in groups[:MAX_LINES_PER_WORKLOAD]:
            times = f"  x{n}" if n > 1 else ""
            lines.append(
                f"      {v['severity']:<7} {v['check_type']:<15} "
                f"{clean(v.get('context_path') or v.get('context'), 60)}"
                f"  {format_bytes(v.get('used_delta'))}  {format_rate(v.get('bytes_per_iteration'))}"
                f"  {clean(v.get('source_lib'), 40)}{times}"
            )
            lines.append(f"              {clean(v.get('detail'))}")
        if len(groups) > MAX_LINES_PER_WORKLOAD:
            rest = sum(n for _, n in groups[MAX_LINES_PER_WORKLOAD:])
            lines.append(f"      … {rest} more violations in results.json")
    verdict = conclude([results], fail_on)
    c = verdict.counts
    tail = (f"{_counts_text(c.by_severity)}; {c.suppressed} suppressed; "
            f"{c.workloads} workloads, {c.broken} broken")
    if c.dropped:
        tail += f"; {c.dropped} dropped by the ring buffer (counts are a lower bound)"
    lines.append(("FAILED: " if verdict.failed else "PASSED: ") + tail)
    lines.extend(f"  - {reason}" for reason in verdict.reasons)
    return "\n".join(lines) + "\n"
