"""Replay: record tool observations and LLM replies, and play them back exactly.

An evaluation run with a replay file stores every tool result and every chat
model reply under a key of what determines it (the library's videos by
content fingerprint, the models' identities, the tool and its arguments, or
the messages sent). A second run with the same file answers from it, so the
same questions give the same records, however slow or random the live parts.
The file is append-only JSONL; a key seen twice keeps its first value.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any


class ReplayCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self._data.setdefault(row["key"], row["value"])

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def get(self, key: str) -> Any | None:
        value = self._data.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            if key in self._data:
                return
            self._data[key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
