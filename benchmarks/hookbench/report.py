"""Text for the terminal: the instruction table, the determinism line and the profile note (formatting only)."""

from __future__ import annotations

import statistics
from typing import Dict, List, Optional, Sequence

from benchmarks.hookbench.callgrind import AnnotatedFunction, OwnWork
from benchmarks.hookbench.configs import CONFIGS, target
from benchmarks.hookbench.evaluate import SPREAD_LIMIT, Row, baseline_of, verdict
from benchmarks.hookbench.streams import Stream


def _num(value: float) -> str:
    return f"{value:,.0f}"


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"


def _target(value: Optional[float]) -> str:
    return "-" if value is None else f"<= {value:.2f}"


def table(rows: Sequence[Row], streams: Dict[str, Stream], repeats: int) -> str:
    header = ("stream", "foreign libraries", "config", "instructions", "per unit", "extra/unit", "spread",
              "ratio", "target", "verdict")
    body: List[Sequence[str]] = []
    for row in rows:
        stream = streams[row.stream]
        base = baseline_of(rows, row)
        extra = "-" if row.config.is_baseline else _num((row.instructions - base.instructions) / stream.units)
        body.append((row.stream, row.foreign, row.config.name, _num(row.instructions),
                     _num(row.instructions / stream.units), extra, f"{row.spread:.3%}", _ratio(row.ratio),
                     _target(row.target), row.verdict))
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    left = {0, 1, 2, 9}

    def fmt(cells: Sequence[str]) -> str:
        padded = (c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    lines = [
        f"Instructions (callgrind Ir) of the measured part of each stream, mean of {repeats} runs; start-up, "
        "setup and shut-down excluded.",
        "ratio = instructions / baseline (the same foreign libraries preloaded, pg_ext_memcheck not loaded); "
        "spread = (max - min) / mean of the runs.",
        "",
    ]
    for stream in streams.values():
        if any(r.stream == stream.key for r in rows):
            lines.append(f"  {stream.key}: {stream.title} (unit: {stream.unit}, {stream.units} per stream)")
    lines += ["", fmt(header), fmt(["-" * w for w in widths])]
    previous = None
    for row, cells in zip(rows, body):
        if previous is not None and (row.stream, row.foreign) != previous:
            lines.append("")
        previous = (row.stream, row.foreign)
        lines.append(fmt(cells))
    return "\n".join(lines)


def determinism(rows: Sequence[Row]) -> str:
    worst = max(rows, key=lambda r: r.spread)
    bad = [r for r in rows if not r.deterministic]
    line = (f"Repeat agreement: largest spread {worst.spread:.4%} ({worst.stream}, {worst.foreign}, "
            f"{worst.config.name}) against a limit of {SPREAD_LIMIT:.1%}: ")
    if not bad:
        return line + "all runs agree."
    names = "; ".join(f"{r.stream}/{r.foreign}/{r.config.name} {r.spread:.3%}" for r in bad)
    return line + f"NOT DETERMINISTIC, the figures above are not trustworthy: {names}"


def verdicts(rows: Sequence[Row]) -> str:
    judged = [r for r in rows if r.verdict]
    missed = [r for r in judged if r.verdict != "met"]
    if not judged:
        return "Targets: none apply to the configurations measured."
    text = f"Targets: {len(judged) - len(missed)} of {len(judged)} met"
    if missed:
        text += "; MISSED: " + ", ".join(f"{r.stream}/{r.foreign}/{r.config.name} {r.ratio:.3f}" for r in missed)
    return text + ". (A measurement: the exit status does not depend on the targets.)"


def profile_note(
    title: str,
    measured: int,
    baseline: float,
    work: OwnWork,
    inclusive: Sequence[AnnotatedFunction],
    self_cost: Dict[str, int],
    top: int = 12,
) -> str:
    overhead = measured - baseline

    def share(value: float) -> str:
        return f"{value / overhead:7.1%}" if overhead > 0 else "      -"

    lines = [
        f"Profile: {title}",
        f"  measured part {_num(measured)} instructions, baseline {_num(baseline)}, overhead {_num(overhead)} "
        f"({measured / baseline - 1:+.1%})",
        "",
        f"  pg_ext_memcheck's own work (its functions plus what they call, the hook chain it passes control to "
        f"excluded): {_num(work.total)} instructions = {share(work.total).strip()} of the overhead",
        f"  {'own work':>14s}  {'of overhead':>11s}  function",
    ]
    for fn, cost in sorted(work.by_function.items(), key=lambda kv: -kv[1])[:top]:
        if cost:
            lines.append(f"  {_num(cost):>14s}  {share(cost):>11s}  {fn}")
    lines += ["", "  called from pg_ext_memcheck code (outside the library, inclusive):",
              f"  {'instructions':>14s}  {'of overhead':>11s}  function"]
    for fn, cost in sorted(work.callees.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {_num(cost):>14s}  {share(cost):>11s}  {fn} (from {', '.join(work.callers[fn])})")
    if any(fn.startswith("0x") for fn in work.callees):
        lines.append("  (0x... names are static functions of a binary without symbols, named by their address)")
    lines += [
        "",
        "  pg_ext_memcheck.so functions by inclusive cost (callgrind_annotate --inclusive=yes; the hook wrappers'",
        "  inclusive cost holds the rest of the hook chain and PostgreSQL's own work, see 'own work' above):",
        f"  {'inclusive':>14s}  {'self':>12s}  function",
    ]
    for row in list(inclusive)[:top]:
        lines.append(f"  {_num(row.cost):>14s}  {_num(self_cost.get(row.function, 0)):>12s}  "
                     f"{row.function} ({row.file.rsplit('/', 1)[-1]})")
    return "\n".join(lines)


def tps_table(tps: Dict[str, List[float]], foreign: str, stream: str, clients: int, seconds: int, rounds: int) -> str:
    """The throughput view: median TPS per configuration and the cost ratio baseline TPS / TPS."""
    base = statistics.median(tps[CONFIGS[0].name])
    lines = [
        f"pgbench -S, {clients} clients, {seconds}s x {rounds} rounds; foreign libraries: {foreign}",
        "cost ratio = baseline median TPS / median TPS (timing: noisier than the instruction counts)",
        "",
        f"{'config':10s} {'median tps':>12s} {'cost ratio':>10s} {'target':>8s}  verdict   rounds",
    ]
    for config in CONFIGS:
        med = statistics.median(tps[config.name])
        ratio = None if config.is_baseline else base / med
        limit = target(config, stream)
        rounds_text = " ".join(f"{v:.0f}" for v in tps[config.name])
        lines.append(f"{config.name:10s} {med:12.1f} {_ratio(ratio):>10s} {_target(limit):>8s}  "
                     f"{verdict(ratio, limit):8s}  {rounds_text}")
    return "\n".join(lines)
