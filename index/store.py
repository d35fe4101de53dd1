"""The library on disk: SQLite rows (SQLAlchemy 2.0) plus FAISS vector files.

Layout of a library directory::

    library.db              videos, scenes, clips, frames, words, events, texts (+ FTS5)
    vectors/<level>.<modality>/        one segmented vector index per (level, modality) (index/vectors.py)

Every row carries ``start``/``end`` seconds, so any hit is a moment. FAISS ids
are the SQLite row ids of the table the level names (frames, clips, scenes,
videos, and periods for the hour and day levels, for visual vectors; texts
for text vectors). The schema grows by an append-only list of migrations;
``meta.schema_version`` says how far it got.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vdisc.errors import LibraryError

from .vectors import VectorIndex, index_names

SCHEMA_VERSION = 3

# Videos that readers (browse, search, ask) show: finished ones, and live ones
# while a follower is still adding clips to them.
VISIBLE_STATUSES: tuple[str, ...] = ("done", "live")

# A video's channel -> the model role that made it (``Video.channels``).
# vector modalities keyed by unit ids (clip, frame, ... rows), not by text rows: the mean-pooled visual
# vectors and the clip compressor's temporal ones (index/writer.py)
UNIT_MODALITIES = ("visual", "temporal")
CHANNEL_ROLES: dict[str, str] = {"speech": "asr", "visual": "visual", "ocr": "ocr", "caption": "caption"}


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(String)


class ModelRow(Base):
    """A model that produced stored vectors or texts (id, revision, dim, preprocessing)."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String)
    key: Mapped[str] = mapped_column(String, unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)


class Video(Base):
    __tablename__ = "videos"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String, unique=True)
    name: Mapped[str] = mapped_column(String)
    fingerprint: Mapped[str] = mapped_column(String, index=True)
    size: Mapped[int] = mapped_column(Integer)
    duration: Mapped[float] = mapped_column(Float)
    fps: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    has_audio: Mapped[bool]
    status: Mapped[str] = mapped_column(String, default="indexing")  # indexing | live | done
    channels: Mapped[list[Any]] = mapped_column(JSON, default=list)  # roles that contributed
    decoder: Mapped[str] = mapped_column(String, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    indexed_at: Mapped[str] = mapped_column(String, default="")
    # ISO wall-clock time of media t=0 for live sources ("" for files): media seconds + this = when
    started_at: Mapped[str] = mapped_column(String, default="", server_default="")


class Scene(Base):
    __tablename__ = "scenes"
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)


class Clip(Base):
    __tablename__ = "clips"
    # time-range reads of one video (browse, consolidation, retention) walk this, not every clip
    __table_args__ = (Index("ix_clips_video_start", "video_id", "start"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    scene_id: Mapped[int | None] = mapped_column(ForeignKey("scenes.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    shot: Mapped[int] = mapped_column(Integer)  # clips cut from one shot share it
    transcript: Mapped[str] = mapped_column(Text, default="")
    ocr_text: Mapped[str] = mapped_column(Text, default="")
    caption: Mapped[str] = mapped_column(Text, default="")
    caption_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))


class Frame(Base):
    __tablename__ = "frames"
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), index=True)
    ts: Mapped[float] = mapped_column(Float)


class Word(Base):
    __tablename__ = "words"
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    clip_id: Mapped[int | None] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), index=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(String)
    prob: Mapped[float] = mapped_column(Float, default=1.0)


class Period(Base):
    """An hour or a day of media time, consolidated from its children (clips, or hours).

    Spans are fixed: hour k is [k*3600, (k+1)*3600) of media time, day k is
    [k*86400, (k+1)*86400); the last one of a finished video ends at its end.
    ``said``/``shown``/``seen`` are bounded digests (see ``index/memory``).
    ``ready`` turns true once its vectors are saved, so a crash in between
    leaves a period that the next consolidation rebuilds.
    """

    __tablename__ = "periods"
    __table_args__ = (UniqueConstraint("video_id", "level", "idx"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String)  # hour | day
    idx: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    said: Mapped[str] = mapped_column(Text, default="")
    shown: Mapped[str] = mapped_column(Text, default="")
    seen: Mapped[str] = mapped_column(Text, default="")
    ready: Mapped[bool] = mapped_column(default=False)


class Event(Base):
    """Something said or shown, with its true extent: an utterance or a text track (``index/events``).

    ``bounds`` says where the edges may lie (start in [b0, b1], end in [b2, b3]):
    exact for an utterance, between two OCR reads for a track, for ``ground``
    to narrow down.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_video_start", "video_id", "start"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String)  # utterance | track
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    bounds: Mapped[list[Any]] = mapped_column(JSON)


# The text modality of each event kind: an utterance is speech, a text track on-screen text.
EVENT_MODALITY = {"utterance": "speech", "track": "ocr"}


class TextChunk(Base):
    """Searchable text of one unit (event, clip, scene, hour, day, video) in one modality."""

    __tablename__ = "texts"
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String)  # event | clip | scene | hour | day | video
    unit_id: Mapped[int] = mapped_column(Integer)  # events.id / clips.id / scenes.id / periods.id / videos.id
    modality: Mapped[str] = mapped_column(String)  # speech | ocr | caption | summary
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)


# The table behind each level's ids; hours and days share ``periods`` (filter on Period.level).
UNIT_TABLES = {"video": Video, "day": Period, "hour": Period, "scene": Scene, "clip": Clip, "frame": Frame,
               "event": Event}
PERIOD_LEVELS: tuple[str, ...] = ("hour", "day")


def _migration_1(conn: Any) -> None:
    Base.metadata.create_all(conn)
    # Words for BM25: porter stemming so "launches" finds "launch".
    conn.execute(text(
        "CREATE VIRTUAL TABLE IF NOT EXISTS texts_fts USING fts5("
        "text, content='texts', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
    ))
    conn.execute(text(
        "CREATE TRIGGER IF NOT EXISTS texts_ai AFTER INSERT ON texts BEGIN "
        "INSERT INTO texts_fts(rowid, text) VALUES (new.id, new.text); END"
    ))
    conn.execute(text(
        "CREATE TRIGGER IF NOT EXISTS texts_ad AFTER DELETE ON texts BEGIN "
        "INSERT INTO texts_fts(texts_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
    ))


def _migration_2(conn: Any) -> None:
    """Live videos and bounded memory: ``videos.started_at``, the ``periods`` table, a clip time index.

    Migration 1 creates tables from the current models, so a library made
    fresh already has all of this: every step here checks before it adds.
    """
    columns = {row[1] for row in conn.execute(text("PRAGMA table_info(videos)"))}
    if "started_at" not in columns:
        conn.execute(text("ALTER TABLE videos ADD COLUMN started_at VARCHAR NOT NULL DEFAULT ''"))
    Period.__table__.create(conn, checkfirst=True)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_clips_video_start ON clips (video_id, start)"))


def _migration_3(conn: Any) -> None:
    """Events with their true extent (utterances, text tracks). Videos indexed before get theirs when
    indexed again (``vdisc index --force``); until then their clips answer as before."""
    Event.__table__.create(conn, checkfirst=True)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_events_video_start ON events (video_id, start)"))


# Append-only: migration N brings the schema from version N-1 to N.
MIGRATIONS = [_migration_1, _migration_2, _migration_3]
assert len(MIGRATIONS) == SCHEMA_VERSION


class Store:
    """SQLite + FAISS for one library directory."""

    def __init__(self, home: Path, create: bool = True, gpu: bool = False) -> None:
        self.home = Path(home)
        self.db_path = self.home / "library.db"
        self.vectors_dir = self.home / "vectors"
        if not self.db_path.exists() and not create:
            raise LibraryError(f"no library at {self.home}; index a video first (vdisc index PATH)")
        if create:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.vectors_dir.mkdir(exist_ok=True, mode=0o700)
        self.gpu = gpu
        self.engine = create_engine(f"sqlite:///{self.db_path}")
        event.listen(self.engine, "connect", _sqlite_pragmas)
        self._indexes: dict[tuple[str, str], VectorIndex] = {}
        self._migrate()

    # ---- schema -------------------------------------------------------------
    def _migrate(self) -> None:
        # Two processes opening a new library at once (a reader polling while the indexer creates it)
        # would both see no schema and both create the tables: the check and the migration hold a lock.
        with _file_lock(self.home / "schema.lock"), self.engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)"))
            row = conn.execute(text("SELECT value FROM meta WHERE key='schema_version'")).first()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise LibraryError(
                    f"library {self.home} has schema {version}, newer than this vdisc ({SCHEMA_VERSION}); upgrade vdisc"
                )
            for n in range(version, SCHEMA_VERSION):
                MIGRATIONS[n](conn)
            conn.execute(
                text("INSERT INTO meta(key, value) VALUES ('schema_version', :v) "
                     "ON CONFLICT(key) DO UPDATE SET value=excluded.value"),
                {"v": str(SCHEMA_VERSION)},
            )

    @property
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT value FROM meta WHERE key='schema_version'")).scalar_one())

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO meta(key, value) VALUES (:k, :v) "
                              "ON CONFLICT(key) DO UPDATE SET value=excluded.value"), {"k": key, "v": value})

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ---- writers ------------------------------------------------------------
    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Exclusive right to write this library, across processes (a file lock).

        Readers never take it: SQLite WAL gives them a snapshot and FAISS files
        are replaced atomically. A second writer is refused with one line.
        """
        path = self.home / "index.lock"
        with path.open("a+") as fh:
            try:
                import fcntl
            except ImportError:  # Windows: no advisory locks; single writer assumed
                yield
                return
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise LibraryError(f"{self.home} is being indexed by {holder}; wait for it to finish, "
                                   "or use another --library") from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}")
            fh.flush()
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # ---- models -------------------------------------------------------------
    def model_id(self, session: Session, spec: Any) -> int:
        """The row id of the model with this spec, inserting it on first use."""
        row = session.scalar(select(ModelRow).where(ModelRow.key == spec.key))
        if row is None:
            row = ModelRow(role=spec.role, key=spec.key, spec=spec.model_dump())
            session.add(row)
            session.flush()
        return row.id

    # ---- vectors ------------------------------------------------------------
    def vectors(self, level: str, modality: str) -> VectorIndex:
        key = (level, modality)
        if key not in self._indexes:  # setdefault: readers in two threads end up with the same object
            self._indexes.setdefault(key, VectorIndex(self.vectors_dir / f"{level}.{modality}.faiss", gpu=self.gpu))
        return self._indexes[key]

    def vector_indexes(self) -> Iterator[VectorIndex]:
        """Every vector index on disk (level, modality read from its folder, or an old single file's name)."""
        for name in index_names(self.vectors_dir):
            level, modality = name.split(".")
            yield self.vectors(level, modality)

    # ---- videos -------------------------------------------------------------
    def find_video(self, session: Session, ref: str | int) -> Video | None:
        """A video by id, exact path, or file name."""
        if isinstance(ref, int) or str(ref).isdigit():
            return session.get(Video, int(ref))
        path = str(Path(ref).expanduser().resolve())
        v = session.scalar(select(Video).where(Video.path == path))
        if v is None:
            v = session.scalars(select(Video).where(Video.name == Path(ref).name)).first()
        return v

    def remove_vectors(self, units: dict[str, Sequence[int]], texts: Sequence[int] = ()) -> None:
        """Drop the visual vectors of these units (ids by level) and the vectors of these text rows.

        Called before their rows are deleted, so no vector ever outlives its row.
        """
        for index in self.vector_indexes():
            doomed = texts if index.modality not in UNIT_MODALITIES else units.get(index.level, [])
            if doomed and index.remove(doomed):
                index.save()

    def delete_video(self, video_id: int) -> None:
        """Remove a video's vectors, then its rows, keeping FAISS and SQLite in step."""
        with self.session() as s:
            ids = {
                "frame": s.scalars(select(Frame.id).where(Frame.video_id == video_id)).all(),
                "clip": s.scalars(select(Clip.id).where(Clip.video_id == video_id)).all(),
                "scene": s.scalars(select(Scene.id).where(Scene.video_id == video_id)).all(),
                **{level: s.scalars(select(Period.id).where(Period.video_id == video_id,
                                                            Period.level == level)).all()
                   for level in PERIOD_LEVELS},
                "video": [video_id],
            }
            text_ids = s.scalars(select(TextChunk.id).where(TextChunk.video_id == video_id)).all()
        self.remove_vectors(ids, text_ids)
        with self.session() as s, s.begin():
            for table in (TextChunk, Event, Word, Frame, Clip, Scene, Period):
                s.execute(delete(table).where(table.video_id == video_id))
            s.execute(delete(Video).where(Video.id == video_id))

    # ---- FTS ----------------------------------------------------------------
    def fts(self, session: Session, query: str, limit: int = 50, prefer: str | None = None,
            **filters: Any) -> list[tuple[TextChunk, float]]:
        """BM25 matches for the words of ``query`` (any word may match), best first.

        Equally good matches come in id order, or with ``prefer`` "earliest" /
        "latest" in time order, so a limited list keeps the ones that question wants.
        """
        match = fts_query(query)
        if not match:
            return []
        sql = (
            "SELECT texts.id, bm25(texts_fts) AS rank FROM texts_fts JOIN texts ON texts.id = texts_fts.rowid "
            "WHERE texts_fts MATCH :match"
        )
        params: dict[str, Any] = {"match": match, "limit": limit}
        for col in ("video_id", "level", "modality"):
            if filters.get(col) is not None:
                sql += f" AND texts.{col} = :{col}"
                params[col] = filters[col]
        if filters.get("lo") is not None:  # keep texts that overlap [lo, hi]
            sql += " AND texts.\"end\" > :lo"
            params["lo"] = filters["lo"]
        if filters.get("hi") is not None:
            sql += " AND texts.start < :hi"
            params["hi"] = filters["hi"]
        if filters.get("last") is not None:  # the final ``last`` seconds of each text's own video
            sql += f" AND {LAST_WINDOW_SQL}"
            params["last"] = filters["last"]
        tie = {"earliest": 'texts.start, ', "latest": 'texts."end" DESC, '}.get(prefer or "", "")
        sql += f" ORDER BY rank, {tie}texts.id LIMIT :limit"
        rows = session.execute(text(sql), params).all()
        chunks = {c.id: c for c in session.scalars(select(TextChunk).where(TextChunk.id.in_([r[0] for r in rows])))}
        return [(chunks[r[0]], -float(r[1])) for r in rows]

    def roles_used(self) -> set[str]:
        """The model roles this library was built with: the channels of its finished and live videos
        (``CHANNEL_ROLES``), and ``text`` when it holds text vectors."""
        with self.session() as s:
            channels = {c for chs in s.scalars(select(Video.channels).where(Video.status.in_(VISIBLE_STATUSES)))
                        for c in chs or ()}
        roles = {CHANNEL_ROLES[c] for c in channels if c in CHANNEL_ROLES}
        if any(ix.modality not in UNIT_MODALITIES and len(ix) for ix in self.vector_indexes()):
            roles.add("text")
        return roles

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
                for name in ("videos", "scenes", "clips", "frames", "words", "texts", "periods", "events")
            }


# Inside the final ``:last`` seconds of the text's video (its duration is the latest media it has):
# fine units must overlap that window, coarse summaries (hour, day, video) must lie inside it.
LAST_WINDOW_SQL = (
    "(SELECT v.duration FROM videos v WHERE v.id = texts.video_id) - :last < "
    "(CASE WHEN texts.level IN ('hour', 'day', 'video') THEN texts.start + 1e-6 ELSE texts.\"end\" END)"
)


def recorded_models(db_path: Path) -> dict[str, str]:
    """The model references a library was built with ({} if none yet); reads without locking or creating."""
    import json
    import sqlite3

    if not Path(db_path).exists():
        return {}
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='models'").fetchone()
        except sqlite3.DatabaseError:
            return {}
    return json.loads(row[0]) if row else {}


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes for a short critical section (none where it cannot be had)."""
    try:
        import fcntl

        fh = path.open("a+")
    except (ImportError, OSError):  # Windows, or a read-only library: nothing to migrate there anyway
        yield
        return
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers see a snapshot while an index run writes
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


# English words too common to say anything about a moment.
STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have he her his how i if in into is "
    "it its me my no not of on or our she so than that the their them then there these they this those to was we "
    "were what when where which while who why will with would you your".split()
)


def fts_query(query: str) -> str:
    """An FTS5 MATCH string from free text: each word quoted (so no syntax leaks), OR-ed."""
    words = [w for w in re.findall(r"\w+", query.lower()) if w not in STOPWORDS]
    if not words:
        words = re.findall(r"\w+", query.lower())
    seen = dict.fromkeys(words)
    return " OR ".join(f'"{w}"' for w in seen)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


__all__ = [
    "Store", "Video", "Scene", "Clip", "Frame", "Word", "TextChunk", "ModelRow", "Period", "UNIT_TABLES",
    "PERIOD_LEVELS", "SCHEMA_VERSION", "VISIBLE_STATUSES", "CHANNEL_ROLES", "fts_query", "now_iso",
]
