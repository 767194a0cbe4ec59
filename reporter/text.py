"""Plain-text helpers shared by every renderer: cleaning untrusted text, bytes, rates, sparklines, widths.

Everything printed or annotated passes through `strip_controls` (via `clean` or `cap`): text from the database, a
results file or the environment must not move the terminal's cursor (ESC sequences), reorder what a reviewer reads
(bidirectional overrides such as U+202E) or inject a line of its own. Renderers escape for their format on top.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, List, Mapping, Optional, Sequence

from reporter.vocab import RATE_UNITS

# C0 controls but tab and newline, DEL, C1 controls; bidirectional marks, embeddings, overrides and isolates;
# the byte-order mark. Line and paragraph separators become newlines (they break lines in some viewers).
_CONTROLS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_NEWLINES = re.compile("\r\n|\r|\u2028|\u2029")
_SHOWN = re.compile(_CONTROLS.pattern[:-1] + "\u2028\u2029]")
ELLIPSIS = "…"


def strip_controls(text: str) -> str:
    """Untrusted text without control or bidirectional characters; line breaks normalised to \\n, tabs kept."""
    if text.isascii() and text.isprintable():  # the common case, decided in C
        return text
    return _CONTROLS.sub("", _NEWLINES.sub("\n", text))


def escape_controls(text: str) -> str:
    """Untrusted text with every control or bidirectional character (and U+2028/U+2029) shown as an escape
    (`\\x1b`, `\\u202e`) instead of removed: for messages that quote a value back to the user, who must see
    what was there. Tab, newline and carriage return are left to the caller's format."""
    if text.isascii() and text.isprintable():
        return text
    return _SHOWN.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                      text)


def cap(text: str, limit: int) -> str:
    """At most `limit` characters; a cut is marked with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def clean(text: Any, limit: int = 160) -> str:
    """Untrusted value -> one safe line of at most `limit` characters; None -> '-'."""
    if text is None:
        return "-"
    one_line = strip_controls(str(text)).replace("\t", " ").replace("\n", " | ")
    return cap(one_line, limit)


def clean_block(text: Any, limit: int) -> str:
    """Untrusted multi-line value, controls stripped and capped (line breaks kept)."""
    return "" if text is None else cap(strip_controls(str(text)), limit)


def plural(n: int, word: str, words: Optional[str] = None) -> str:
    """plural(12345, 'time') -> '12,345 times'."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


# ---- numbers -------------------------------------------------------------------------------------------


def format_bytes(n: Optional[float]) -> str:
    """1536 -> '1.5 KiB'; None -> '-'."""
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


_RAW_BYTES = re.compile(r"(?<![\w.,])(-?\d{4,}) bytes\b")


# "4112208 per statement": the C library's per-unit amounts are bytes too
_RAW_RATE = re.compile(r"(?<![\w.,])(\d{4,}) per (" + "|".join(RATE_UNITS) + r")\b")
# large counts of things: "1000 allocations" -> "1,000 allocations" (not OIDs or other names)
_RAW_COUNT = re.compile(r"(?<![\w.,])(\d{4,})(?= (?:allocations|calls|rows|iterations|statements|executions|"
                        r"nested executions|executor starts|times|child contexts?|occurrences)\b)")


def humanise(text: str) -> str:
    """Numbers in a sentence the way a reader takes them in: 'grew 8224416 bytes' -> 'grew 7.8 MiB',
    '4112208 per statement' -> '3.9 MiB per statement', '1000 allocations' -> '1,000 allocations' (byte counts
    below 1,024 stay as they are)."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = _RAW_BYTES.sub(lambda m: format_bytes(int(m.group(1))), text)
    text = _RAW_RATE.sub(lambda m: f"{format_bytes(int(m.group(1)))} per {m.group(2)}", text)
    return _RAW_COUNT.sub(lambda m: f"{int(m.group(1)):,}", text)


def format_rate(rate: Optional[Mapping[str, Any]]) -> str:
    """{"bytes": 2064, "unit": "call"} -> '2.0 KiB/call'; the unit is the rate's own, never assumed."""
    if not rate or rate.get("bytes") is None:
        return "-"
    return f"{format_bytes(rate['bytes'])}/{rate.get('unit') or 'iteration'}"


SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 24


def sparkline(samples: Optional[Sequence[int]]) -> str:
    """Unicode-block sparkline of sampled usage, down-sampled to SPARK_POINTS; '' when not sampled."""
    if not samples or len(samples) < 2:
        return ""
    points: List[int] = list(samples)
    if len(points) > SPARK_POINTS:
        step = (len(points) - 1) / (SPARK_POINTS - 1)
        points = [points[round(i * step)] for i in range(SPARK_POINTS)]
    lo, hi = min(points), max(points)
    if hi == lo:
        return SPARK_BLOCKS[0] * len(points)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[round((s - lo) * top / (hi - lo))] for s in points)


# ---- terminal widths -----------------------------------------------------------------------------------


def char_width(ch: str) -> int:
    if unicodedata.combining(ch) or ch == "\u200d":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns a (control-free) string takes in a terminal: wide East Asian characters and emoji count 2."""
    if text.isascii():
        return len(text)
    return sum(char_width(ch) for ch in text)


def fit(text: str, width: int) -> str:
    """Cut to at most `width` terminal columns, marking a cut with an ellipsis."""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + ELLIPSIS


def fit_left(text: str, width: int) -> str:
    """Cut to at most `width` terminal columns from the left ('…ExecutorState/SQL function'): for paths, whose
    end names the place."""
    if display_width(text) <= width:
        return text
    out: List[str] = []
    used = 0
    for ch in reversed(text):
        w = char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return ELLIPSIS + "".join(reversed(out))
