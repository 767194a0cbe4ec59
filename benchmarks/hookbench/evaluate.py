"""From repeated instruction counts to the table's figures: mean, spread of the repeats, ratio, verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from benchmarks.hookbench.configs import Config, target

SPREAD_LIMIT = 0.001  # repeat runs must agree within 0.1%


def spread(values: Sequence[int]) -> float:
    """(max - min) / mean of the repeats: 0.0 for identical counts."""
    if not values:
        raise ValueError("spread of no values")
    mean = sum(values) / len(values)
    return (max(values) - min(values)) / mean if mean else 0.0


@dataclass(frozen=True)
class Measurement:
    stream: str
    foreign: str
    config: Config
    runs: Tuple[int, ...]  # instructions of the measured part, one per repeat

    @property
    def mean(self) -> float:
        return sum(self.runs) / len(self.runs)


@dataclass(frozen=True)
class Row:
    stream: str
    foreign: str
    config: Config
    runs: Tuple[int, ...]
    instructions: float
    spread: float
    ratio: Optional[float]  # None for the baseline
    target: Optional[float]
    verdict: str  # "", "met" or "MISSED"

    @property
    def deterministic(self) -> bool:
        return self.spread <= SPREAD_LIMIT


def verdict(ratio: Optional[float], limit: Optional[float]) -> str:
    if ratio is None or limit is None:
        return ""
    return "met" if ratio <= limit else "MISSED"


def evaluate(measurements: Sequence[Measurement]) -> List[Row]:
    """One row per measurement, each against the baseline of its stream and foreign list (which must exist)."""
    baselines: Dict[Tuple[str, str], Measurement] = {
        (m.stream, m.foreign): m for m in measurements if m.config.is_baseline
    }
    rows = []
    for m in measurements:
        base = baselines.get((m.stream, m.foreign))
        if base is None:
            raise ValueError(f"stream {m.stream}, foreign {m.foreign}: no baseline measured")
        ratio = None if m.config.is_baseline else m.mean / base.mean
        limit = target(m.config, m.stream)
        rows.append(Row(m.stream, m.foreign, m.config, m.runs, m.mean, spread(m.runs), ratio, limit,
                        verdict(ratio, limit)))
    return rows


def baseline_of(rows: Sequence[Row], row: Row) -> Row:
    for other in rows:
        if other.stream == row.stream and other.foreign == row.foreign and other.config.is_baseline:
            return other
    raise ValueError(f"stream {row.stream}, foreign {row.foreign}: no baseline row")
