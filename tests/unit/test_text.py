"""Shared text helpers: cleaning untrusted text, bytes and rates, sparklines, terminal widths."""

from __future__ import annotations

import pytest

from reporter.text import (
    cap,
    clean,
    clean_block,
    display_width,
    fit,
    format_bytes,
    format_rate,
    plural,
    sparkline,
    strip_controls,
)

HOSTILE = {
    "ESC (CSI, OSC)": "\x1b[2J\x1b]0;title\x07",
    "C1 CSI": "\x9b31m",
    "NUL and BEL": "\x00\x07",
    "RLO / LRO / PDF": "\u202e\u202d\u202c",
    "isolates": "\u2066\u2067\u2068\u2069",
    "marks": "\u200e\u200f\u061c",
    "BOM": "\ufeff",
    "DEL": "\x7f",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_control_and_bidi_characters_are_stripped(name: str) -> None:
    text = f"a{HOSTILE[name]}b"
    assert strip_controls(text) == "a" + "".join(c for c in HOSTILE[name] if c.isprintable() and c.isascii()) + "b"
    for out in (clean(text), clean_block(text, 100)):
        assert not any(c in out for c in HOSTILE[name] if not (c.isprintable() and c.isascii()))


def test_line_breaks_of_every_kind_become_one_line() -> None:
    assert clean("a\r\nb\rc\nd\u2028e\u2029f\tg") == "a | b | c | d | e | f g"
    assert clean_block("a\r\nb\u2028c", 100) == "a\nb\nc"
    assert clean(None) == "-"


def test_caps_mark_the_cut() -> None:
    assert clean("x" * 500, 10) == "x" * 9 + "…"
    assert cap("abc", 3) == "abc" and cap("abcd", 3) == "ab…"
    assert len(clean_block("y" * 100_000, 64)) == 64


def test_format_bytes_and_rates_name_their_unit() -> None:
    assert [format_bytes(x) for x in (None, 0, 1023, 1536, 3 * 1024 ** 3, -2048)] == [
        "-", "0 B", "1023 B", "1.5 KiB", "3.0 GiB", "-2.0 KiB"]
    assert format_rate({"bytes": 2064, "unit": "call"}) == "2.0 KiB/call"
    assert format_rate({"bytes": 8208, "unit": "statement"}) == "8.0 KiB/statement"
    assert format_rate({"bytes": 70, "unit": "row"}) == "70 B/row"
    assert format_rate(None) == "-"
    assert plural(1, "time") == "1 time" and plural(2000, "row") == "2,000 rows"


def test_sparkline() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▁▁▁"
    assert sparkline(None) == "" and sparkline([1]) == ""
    assert len(sparkline(list(range(1000)))) == 24


def test_terminal_widths() -> None:
    assert display_width("abc") == 3
    assert display_width("表示") == 4  # wide characters take two columns
    assert display_width("e\u0301") == 1  # a combining accent takes none
    assert fit("abcdef", 4) == "abc…" and fit("abc", 4) == "abc"
    assert fit("表示表示", 5) == "表示…" and display_width(fit("表示表示", 5)) <= 5
