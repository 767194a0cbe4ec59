"""The event payload the GitHub runner wrote (GITHUB_EVENT_PATH). Standard library only: the action's input
validation reads it before the reporter's dependencies are installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional


def load_event(event_path: Optional[str]) -> Dict[str, Any]:
    """The event payload; {} when absent or malformed."""
    if not event_path:
        return {}
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return event if isinstance(event, dict) else {}
