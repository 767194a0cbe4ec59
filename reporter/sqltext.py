"""Split SQL text into top-level statements with their line numbers, the way psql splits a script.

No database: quotes ('...', E'...', "..."), dollar quotes ($tag$...$tag$) and comments (--, nested /* */)
are skipped, so a `;` or a `COMMIT` inside a function body or a string is not a statement boundary; neither is
a `;` inside parentheses or inside the `BEGIN ATOMIC ... END` body of a CREATE FUNCTION/PROCEDURE (psql's own
rules, src/fe_utils/psqlscan.l). A backslash outside quotes starts a psql meta-command that runs to the end of
its line (`\\set ECHO none`); it is not SQL. `\\g` and its kin send the statement before them, like `;`.
Used to reject, before anything starts, SQL that cannot run the way a workload would run it, and to send
memcheck.yml's `setup` one statement at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")

# What the server's SPI refuses (SPI_ERROR_TRANSACTION): run_scenario would silently run nothing.
TRANSACTION_CONTROL = ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE")


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first word within the text
    words: Tuple[str, ...]  # bare words outside quotes and comments, upper-cased


@dataclass(frozen=True)
class MetaCommand:
    """A psql meta-command: `\\name args` to the end of its line."""

    name: str  # without the backslash: 'set', 'gset', 'connect'
    text: str  # the whole command, backslash included
    line: int


# The psql meta-commands that send the query buffer, as `;` does.
_SENDING = ("g", "gx", "gset", "gexec", "gdesc", "crosstabview", "watch")
_META_NAME = re.compile(r"[A-Za-z0-9_?!+-]*")


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
    """Top-level statements (empty ones dropped), each with its line and its bare words; meta-commands left out."""
    return [item for item in script(text) if isinstance(item, Statement)]


def _in_routine_body(words: List[str]) -> bool:
    """CREATE [OR REPLACE] FUNCTION|PROCEDURE: psql counts BEGIN ... END inside it (a SQL-standard body)."""
    head = words[:4]
    if head[:1] != ["CREATE"]:
        return False
    if head[1:2] in (["FUNCTION"], ["PROCEDURE"]):
        return True
    return head[1:3] == ["OR", "REPLACE"] and head[3:4] in (["FUNCTION"], ["PROCEDURE"])


def script(text: str) -> List[Union[Statement, MetaCommand]]:
    """Statements and psql meta-commands in the order psql meets them."""
    out: List[Union[Statement, MetaCommand]] = []
    start = 0
    words: List[str] = []
    first_word_at: Optional[int] = None
    paren_depth = 0
    begin_depth = 0
    cut: List[Tuple[int, int]] = []  # meta-commands inside the statement: psql does not send them
    i = 0
    n = len(text)

    def close(end: int) -> None:
        nonlocal words, first_word_at, paren_depth, begin_depth
        if words and first_word_at is not None:
            pieces, at = [], start
            for a, b in cut:
                pieces.append(text[at:a])
                at = b
            pieces.append(text[at:end])
            out.append(Statement("".join(pieces).strip(), text.count("\n", 0, first_word_at) + 1, tuple(words)))
        words = []
        first_word_at = None
        paren_depth = begin_depth = 0
        cut.clear()

    while i < n:
        ch = text[i]
        if ch == ";":
            if paren_depth == 0 and begin_depth == 0:
                close(i)
                i += 1
                start = i
            else:
                i += 1
        elif ch == "\\":
            if text.startswith(("\\;", "\\:"), i):  # psql's escaped ; and : are part of the statement
                i += 2
                continue
            nl = text.find("\n", i)
            end = n if nl < 0 else nl
            name = _META_NAME.match(text, i + 1).group(0)
            if name in _SENDING:
                close(i)
            out.append(MetaCommand(name, text[i:end].strip(), text.count("\n", 0, i) + 1))
            if first_word_at is not None:
                cut.append((i, end))
            i = end
        elif ch == "(":
            paren_depth += 1
            i += 1
        elif ch == ")":
            paren_depth = max(0, paren_depth - 1)
            i += 1
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
                    start = i
                upper = word.upper()
                words.append(upper)
                if paren_depth == 0 and _in_routine_body(words):
                    if upper == "BEGIN" or (upper == "CASE" and begin_depth >= 1):
                        begin_depth += 1
                    elif upper == "END" and begin_depth > 0:
                        begin_depth -= 1
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
