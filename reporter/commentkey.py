"""The sticky comment's key: what it may hold, and how it is written into the hidden marker. Standard library
only: the action's input validation imports it before the reporter's dependencies are installed."""

from __future__ import annotations

import re

from reporter.text import strip_controls

MAX_KEY = 100


def key_problem(key: str) -> bool:
    """A key that cannot be a comment key: over 100 characters, '--', '<' or '>' (they could end the HTML
    comment it sits in), control or bidirectional characters."""
    return (len(key) > MAX_KEY or "--" in key or "<" in key or ">" in key or strip_controls(key) != key
            or any(ord(c) < 32 or ord(c) == 127 for c in key))


def normalize_key(key: str) -> str:
    """Keys come from workflow names ('CI tests'): keep them one token that cannot close the HTML comment."""
    cleaned = re.sub(r"[^A-Za-z0-9._/-]+", "_", key.strip()).replace("--", "-_")
    return cleaned[:MAX_KEY] or "default"
