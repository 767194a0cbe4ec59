"""Split SQL text into top-level statements with their line numbers, the way the server's lexer sees them.

No database: quotes ('...', E'...', "..."), dollar quotes ($tag$...$tag$) and comments (--, nested /* */)
are skipped, so a `;` or a `COMMIT` inside a function body or a string is not a statement boundary.
Used to reject, before anything starts, SQL that cannot run the way a workload would run it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")

# What the server's SPI refuses (SPI_ERROR_TRANSACTION): run_scenario would silently run nothing.
TRANSACTION_CONTROL = ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE")


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first word within the text
    words: Tuple[str, ...]  # bare words outside quotes and comments, upper-cased


def _skip_quoted(text: str, i: int, quote: str, backslash: bool) -> int:
    """Index after the closing quote of the literal opening at text[i]; doubled quotes stay inside."""
    i += 1
    while i < len(text):
        ch = text[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _skip_block_comment(text: str, i: int) -> int:
    depth = 0
    while i < len(text):
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return i


def split(text: str) -> List[Statement]:
    """Top-level statements (empty ones dropped), each with its line and its bare words."""
    out: List[Statement] = []
    start = 0
    words: List[str] = []
    first_word_at: Optional[int] = None
    i = 0
    n = len(text)

    def close(end: int) -> None:
        nonlocal words, first_word_at
        if words and first_word_at is not None:
            out.append(Statement(text[start:end].strip(), text.count("\n", 0, first_word_at) + 1, tuple(words)))
        words = []
        first_word_at = None

    while i < n:
        ch = text[i]
        if ch == ";":
            close(i)
            i += 1
            start = i
        elif text.startswith("--", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif text.startswith("/*", i):
            i = _skip_block_comment(text, i)
        elif ch == "'":
            i = _skip_quoted(text, i, "'", backslash=False)
        elif ch == '"':
            i = _skip_quoted(text, i, '"', backslash=False)
        elif ch == "$":
            m = _DOLLAR_TAG.match(text, i)
            if m and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
                end = text.find(m.group(0), m.end())
                i = n if end < 0 else end + len(m.group(0))
            else:
                i += 1
        else:
            m = _WORD.match(text, i)
            if m:
                word = m.group(0)
                nxt = m.end()
                if word.upper() == "E" and nxt < n and text[nxt] == "'":  # E'...': backslash escapes
                    i = _skip_quoted(text, nxt, "'", backslash=True)
                    continue
                if first_word_at is None:
                    first_word_at = i
                words.append(word.upper())
                i = nxt
            else:
                i += 1
    close(n)
    return out


def transaction_control(stmt: Statement) -> bool:
    if not stmt.words:
        return False
    first = stmt.words[0]
    if first == "PREPARE":
        return len(stmt.words) > 1 and stmt.words[1] == "TRANSACTION"
    return first in TRANSACTION_CONTROL


def copy_with_client(stmt: Statement) -> bool:
    """COPY ... FROM STDIN or COPY ... TO STDOUT: needs the client's copy protocol, which a workload lacks."""
    if not stmt.words or stmt.words[0] != "COPY":
        return False
    pairs = set(zip(stmt.words, stmt.words[1:]))
    return ("FROM", "STDIN") in pairs or ("TO", "STDOUT") in pairs
