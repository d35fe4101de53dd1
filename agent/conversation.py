"""Conversations that continue: each ask is a turn of a thread whose graph state LangGraph's SQLite
checkpointer keeps inside the library (``<library>/conversations.sqlite``).

A follow-up ("and what happened right after?") runs the same graph on the same thread: the LLM planner
sees the earlier messages, and both planners get the previous turn (question, answer, spans) as
``previous``, so "right after", "before that" and "at that moment" are read against the moment the last
answer found. Threads are named by a short id; the newest one is what ``vdisc ask --continue`` picks up.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

FILE = "conversations.sqlite"
# the state's own types, allowed back out of the checkpoint (LangGraph refuses unregistered types)
ALLOWED = [("vdisc.agent.answer", "Observation"), ("vdisc.agent.answer", "Moment")]


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@contextmanager
def checkpointer(home: Path) -> Iterator[Any]:
    """A SQLite checkpointer on the library's conversation file, closed afterwards (one per ask, so
    concurrent asks each have their own connection)."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(home / FILE, check_same_thread=False, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        yield SqliteSaver(conn, serde=JsonPlusSerializer(allowed_msgpack_modules=ALLOWED))
    finally:
        conn.close()


def latest(home: Path) -> str | None:
    """The id of the conversation with the newest turn in the library, else None (checkpoint ids are
    time-ordered uuid6)."""
    path = home / FILE
    if not path.is_file():
        return None
    with sqlite3.connect(path) as conn:
        try:
            row = conn.execute("SELECT thread_id FROM checkpoints ORDER BY checkpoint_id DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # created, but no turn written yet
            return None
    return row[0] if row else None


def exists(home: Path, thread: str) -> bool:
    path = home / FILE
    if not path.is_file():
        return False
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute("SELECT 1 FROM checkpoints WHERE thread_id = ? LIMIT 1", (thread,)).fetchone() \
                is not None
        except sqlite3.OperationalError:
            return False
