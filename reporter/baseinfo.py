"""LEG/base/base.json: which revision a leg's base run was made of, and whether it ran.

Written by `run --base REF` (and `check --compare REF`) next to the base's results.json; read by `report`, which
compares the leg with LEG/base/results.json when the base ran and says why it did not otherwise.

    {"ref": "main", "sha": "<40 hex or null>", "status": "ran" | "skipped", "reason": "<one line or null>"}
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

INFO_FILE = "base.json"
RAN, SKIPPED = "ran", "skipped"
_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class BaseRun:
    ref: str
    sha: Optional[str]
    status: str  # RAN or SKIPPED
    reason: Optional[str] = None  # why it was skipped

    @property
    def label(self) -> str:
        """'main (0123456789ab)': the revision as the report names it."""
        if self.sha and self.sha.startswith(self.ref):
            return self.sha[:12]
        return f"{self.ref} ({self.sha[:12]})" if self.sha else self.ref


def write(directory: Path, run: BaseRun) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(run), indent=2) + "\n", encoding="utf-8")
    tmp.replace(directory / INFO_FILE)


def read(directory: Path) -> Optional[BaseRun]:
    """The base.json in `directory`; None when there is none. A malformed one reads as a skipped base (results
    files are untrusted input: nothing in it is executed or used as a path)."""
    path = Path(directory) / INFO_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ref, sha, status, reason = (data.get(k) for k in ("ref", "sha", "status", "reason"))
    except (OSError, ValueError, AttributeError):
        return BaseRun("?", None, SKIPPED, f"{path} is not readable")
    if not isinstance(ref, str) or status not in (RAN, SKIPPED):
        return BaseRun("?", None, SKIPPED, f"{path} is malformed")
    return BaseRun(ref[:250], sha if isinstance(sha, str) and _SHA.fullmatch(sha) else None, status,
                   str(reason)[:2000] if reason is not None else None)
