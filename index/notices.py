"""Notices about optional model roles, and which ones a library has already said.

A ``Notice`` is the one-line string a ``notify`` callback receives, with the
role it is about, the setting it was said for and a short form (for one line
that gathers several). A notice about a role that is off is news the first
time; after that it is noise. ``<library>/notices.json`` remembers which
notices were said for the library (keyed by role and setting, so changing the
setting makes it news again). Any process may write it: readers need no
writer lock, it is replaced atomically, and failing to read or write it
(a read-only library, a race with another reader) only means the notice is
said again: it never fails a command.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .files import atomic_write

FILE = "notices.json"


class Notice(str):
    """A notice about ``role`` (set to ``ref``): a plain str for callbacks, with ``short`` for a gathered line."""

    role: str
    ref: str
    short: str

    def __new__(cls, text: str, role: str, ref: str = "", short: str = "") -> "Notice":
        self = super().__new__(cls, text)
        self.role, self.ref, self.short = role, ref, short or text
        return self

    @property
    def key(self) -> str:
        return f"{self.role}={self.ref}"

    def record(self) -> dict[str, Any]:
        return {"role": self.role, "ref": self.ref, "message": str(self), "short": self.short}


def said(home: Path) -> dict[str, dict[str, Any]]:
    """Key -> record of the notices said for the library at ``home`` ({} when none, or unreadable)."""
    try:
        data = json.loads((Path(home) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def remember(home: Path, notice: Notice) -> bool:
    """Record that ``notice`` was said for the library at ``home``; False (nothing written) if that fails."""
    home = Path(home)
    if not (home / "library.db").exists():  # no library yet: nothing to remember it for
        return False
    records = said(home)
    records[notice.key] = {**notice.record(), "said_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        atomic_write(home / FILE, json.dumps(records, indent=1, ensure_ascii=False).encode(), durable=False)
    except OSError:
        return False
    return True
