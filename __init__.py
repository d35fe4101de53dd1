"""vdisc: find moments in long videos.

The public Python API (what notebooks use, and what the CLI wraps)::

    from vdisc import Library
    lib = Library()                    # ~/.vdisc, or VDISC_HOME, or Library("path")
    lib.index("movie.mp4")             # -> [IndexReport]
    lib.search("moon falling").hits    # -> ranked moments with start/end seconds

Importing vdisc is cheap: models, torch and FAISS load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import BaseModel

from vdisc.config import Settings
from vdisc.errors import ConfigError, DecodeError, LibraryError, ModelUnavailable, VdiscError

if TYPE_CHECKING:
    from vdisc.agent.answer import Answer
    from vdisc.export import ClipReport
    from vdisc.index.follow import FollowHandle
    from vdisc.index.pipeline import IndexReport, ProgressFn
    from vdisc.index.ray_index import RayOptions
    from vdisc.index.store import Store
    from vdisc.tools.ground import GroundResult
    from vdisc.tools.search import SearchResult
    from vdisc.tools.zoom import InspectResult
    from vdisc.training import TrainReport

__version__ = "0.1.0"
__all__ = [
    "Library",
    "Settings",
    "VideoEntry",
    "VdiscError",
    "ConfigError",
    "DecodeError",
    "LibraryError",
    "ModelUnavailable",
    "__version__",
]


class VideoEntry(BaseModel):
    """One indexed video, as ``Library.videos()`` and ``vdisc ls`` show it."""

    id: int
    name: str
    path: str
    duration: float
    clips: int
    scenes: int
    channels: list[str]
    status: str
    indexed_at: str


class Library:
    """A video library on disk: index videos into it, search it.

    ``path`` (or ``settings.home``) is the library directory; other keyword
    arguments override settings (``device="cpu"``, ``models={"asr": "none"}``).
    ``notify`` receives one-line notices (a model role that is off, say);
    with ``notify_once`` a notice about an optional role is passed on the
    first time for this library only (remembered in the library directory,
    ``vdisc.index.notices``), unless the library was built with that role;
    ``notices()`` lists them. ``progress`` receives ``Progress`` events while
    indexing.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        settings: Settings | None = None,
        notify: Callable[[str], None] | None = None,
        notify_once: bool = False,
        progress: "ProgressFn | None" = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = Settings.load(home=path, **overrides)
        elif path is not None or overrides:
            settings = settings.model_copy(update={"home": Path(path).expanduser() if path else settings.home,
                                                   **{k: v for k, v in overrides.items() if v is not None}})
        settings.apply_environment()
        from vdisc.index.store import recorded_models

        self.settings = settings.with_library_models(recorded_models(settings.db_path))
        self.notify = notify
        self.notify_once = notify_once
        self.progress = progress
        self._store: Store | None = None
        self._registry: Any = None
        self._said: dict[str, Any] = {}  # key -> Notice, every role notice this Library had to say
        self._roles_used: set[str] | None = None

    def __repr__(self) -> str:
        return f"Library({str(self.settings.home)!r})"

    @property
    def path(self) -> Path:
        return self.settings.home

    @property
    def store(self) -> "Store":
        """The library's store, created on first use."""
        return self._open_store(create=True)

    @property
    def registry(self) -> Any:
        """The model registry (``vdisc.index.models.Registry``) this library uses."""
        if self._registry is None:
            from vdisc.index.models import Registry

            self._registry = Registry(self.settings, notify=self._say)
        return self._registry

    def _say(self, msg: str, log: bool = True) -> None:
        """Pass a notice to ``notify`` (or the log); with ``notify_once``, an optional role's notice only once."""
        key = getattr(msg, "key", None)
        if key is not None:
            self._said[key] = msg
            if self.notify_once and msg.role not in self._used_roles():  # a role the library was built with: always
                from vdisc.index import notices

                if key in notices.said(self.path):
                    return  # said before for this library; notices() (vdisc info) lists it
                notices.remember(self.path, msg)  # if that fails, it is only said again next time
        if self.notify is not None:
            self.notify(msg)
        elif log:
            import logging

            logging.getLogger("vdisc").warning(msg)

    def _used_roles(self) -> set[str]:
        """The model roles this library was built with ({} before anything is indexed), read once."""
        if self._roles_used is None:
            try:
                self._roles_used = self._existing_store().roles_used()
            except Exception:  # noqa: BLE001 - no library yet, or unreadable: nothing is in use
                self._roles_used = set()
        return self._roles_used

    def notices(self) -> list[dict[str, Any]]:
        """The notices about optional roles that hold for this library now: those said for it before (while
        their setting is unchanged) and those this Library said, each ``{role, ref, message, short}``."""
        from vdisc.agent import chat_model
        from vdisc.index import notices

        out = {k: v for k, v in notices.said(self.path).items()
               if self.settings.models.get(v.get("role")) == v.get("ref")}
        out.update({k: n.record() for k, n in self._said.items()})
        if not chat_model.configured(self.settings.models["llm"]):
            n = chat_model.offline_notice(self.settings.models["llm"])
            out.setdefault(n.key, n.record())
        ready = {r for r, st in (self._registry.status() if self._registry else {}).items() if st["state"] == "ready"}
        return [{k: v[k] for k in ("role", "ref", "message", "short") if k in v}
                for v in out.values() if v.get("role") not in ready]

    def index(self, *paths: "str | Path | list[str | Path]", force: bool = False,
              ray: "str | RayOptions | None" = None) -> list["IndexReport"]:
        """Index video files (folders are walked recursively; lists are accepted); one report per file.

        Unchanged files already in the library are skipped unless ``force``.
        A file that cannot be read yields a report with status "failed" and
        the reason; the others are still indexed. With ``ray`` ("local",
        "auto", "ray://host:port", "host:port" or a ``RayOptions``) the
        perception runs in Ray actors (``vdisc[ray]``) and this process writes
        the same library a local run would (``vdisc.index.ray_index``).
        """
        from vdisc.index.pipeline import Indexer, expand_paths

        flat = [q for p in paths for q in (p if isinstance(p, (list, tuple)) else [p])]
        if not flat:
            raise ConfigError("give at least one video file or folder to index")
        files = expand_paths(flat)
        if not files:
            raise DecodeError(f"no video files found in {', '.join(map(str, flat))}")
        from vdisc.index.writer import settle_dead_followers

        if ray is not None:
            from vdisc.index.ray_index import RayIndexer, RayOptions

            on_ray = RayIndexer(self.settings, self.store, self.registry, self.progress, RayOptions.parse(ray))
            with self.store.writer_lock():
                settle_dead_followers(self.store, self.registry, self.settings)
                return on_ray.index(files, force=force)
        indexer = Indexer(self.settings, self.store, self.registry, self.progress)
        with self.store.writer_lock():
            settle_dead_followers(self.store, self.registry, self.settings)
            return [indexer.index(f, force=force) for f in files]

    def follow(self, source: "str | Path", *, duration: float | str | None = None,
               idle: float | None = None) -> "FollowHandle":
        """Index a live or growing source as it plays, in a background thread.

        ``source`` is a stream URL (HLS, RTSP, HTTP), a file that is still being
        written (MPEG-TS, Matroska or fragmented MP4), or a capture device as
        ``format:device`` (``v4l2:/dev/video0``). Clips are searchable as soon as
        they are committed. Stops when the source ends, after ``duration`` of
        media (seconds, or "10m", "2h"), or on ``handle.stop()``; a file that
        stops growing for ``idle`` seconds (default 30) has ended.
        """
        import contextlib

        from vdisc.index.follow import IDLE_SECONDS, Follower, FollowHandle
        from vdisc.index.writer import settle_dead_followers
        from vdisc.tools.search import parse_duration

        seconds = None if duration is None else parse_duration(duration)
        stack = contextlib.ExitStack()
        stack.enter_context(self.store.writer_lock())  # refused here, at once, if someone else writes
        try:
            settle_dead_followers(self.store, self.registry, self.settings)
            follower = Follower(self.settings, self.store, self.registry, source, duration=seconds,
                                progress=self.progress, idle=IDLE_SECONDS if idle is None else idle)
        except BaseException:
            stack.close()
            raise
        return FollowHandle(follower, stack)

    def remove(self, video: str | int) -> str:
        """Remove a video's rows and vectors from the library; returns its name."""
        store = self._existing_store()
        with store.writer_lock():
            with store.session() as s:
                v = store.find_video(s, video)
                if v is None:
                    raise LibraryError(f"no indexed video matches {video!r}; see vdisc ls")
                vid, name = v.id, v.name
            store.delete_video(vid)
        return name

    def compact(self, merge_size: int | None = None) -> list[dict[str, Any]]:
        """Rewrite the vector segments that hold deleted rows and merge small ones (up to ``merge_size``
        vectors, default the seal size); one summary per index. Takes the writer's lock."""
        store = self._existing_store()
        with store.writer_lock():
            return [index.compact(merge_size=merge_size) for index in store.vector_indexes()]

    def doctor(self) -> dict[str, Any]:
        """Checks of the machine and the library, each with ``ok`` and, when not ok, how to fix it."""
        from vdisc.doctor import run_checks

        return run_checks(self)

    def search(
        self,
        query: str,
        *,
        top_k: int = 10,
        video: str | int | None = None,
        level: str | None = None,
        modality: str | None = None,
        within: tuple[float, float] | None = None,
        after: float | None = None,
        before: float | None = None,
        last: float | str | None = None,
        order: Literal["relevance", "earliest", "latest"] = "relevance",
    ) -> "SearchResult":
        """Ranked moments for ``query`` across all videos (or one ``video``), optionally in a time window.

        ``last`` keeps only the final stretch of each video, in seconds or as
        ``"10m"``/``"1h30m"`` (for a live video: its latest media). ``order``
        "earliest" or "latest" returns the relevant hits in time order
        (``vdisc.tools.search``).
        """
        from vdisc.tools.search import parse_duration, search

        return search(self._context(), query, top_k=top_k, video=video, level=level, modality=modality,
                      within=within, after=after, before=before,
                      last=None if last is None else parse_duration(last), order=order)

    def ask(
        self,
        question: str,
        *,
        video: str | int | None = None,
        llm: Any = None,
        max_steps: int = 12,
        max_seconds: float = 120.0,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        replay: Any = None,
        last: float | str | None = None,
        conversation: str | None = None,
        remember: bool = True,
    ) -> "Answer":
        """Answer a question with moments: an agent searches, inspects and grounds.

        ``llm`` is a model reference (``"openai:gpt-4o-mini"``, or a model name
        served at VDISC_LLM_BASE_URL) or a LangChain chat model; by default the
        configured VDISC_LLM_MODEL, and with none the offline planner (no LLM).
        ``on_event`` receives each tool call and observation as it happens.
        ``replay`` (a ``vdisc.agent.replay.ReplayCache``) records tool results and
        LLM replies, and answers from them when it has them.
        ``last`` (seconds, or ``"10m"``) limits the question to the final
        stretch of each video: for a live video, the latest media received.
        ``conversation`` continues that conversation (an earlier answer's
        ``conversation`` id; ``answer.followup(...)`` does this for you), so
        "right after", "before that" and "there" are read against its last
        answer; without one a new conversation starts. ``remember=False`` keeps
        no conversation (an evaluation's independent questions).
        """
        from vdisc.agent.graph import run_agent
        from vdisc.agent.toolbox import Toolbox
        from vdisc.tools.search import parse_duration

        if not question.strip():
            raise ConfigError("the question is empty")
        if max_steps < 1:
            raise ConfigError("--max-steps must be at least 1")
        seconds = None if last is None else parse_duration(last)
        ctx = self._context()
        if video is not None:
            with ctx.store.session() as s:
                video = ctx.video(s, video).name
        from vdisc.agent import conversation as conv

        if conversation is not None and not conv.exists(self.settings.home, conversation):
            raise ConfigError(f"no conversation {conversation!r} in this library")
        thread = conversation or (conv.new_id() if remember else None)
        planner = self._planner(llm)
        if replay is not None and hasattr(planner, "replay"):
            planner.replay = replay
        answer = run_agent(planner, Toolbox(ctx, video, replay=replay, last=seconds), question, video=video,
                           max_steps=max_steps, max_seconds=max_seconds, on_event=on_event,
                           conversation=thread, home=self.settings.home)
        if thread is not None:
            def followup(q: str, **kwargs: Any) -> "Answer":
                opts = {"video": video, "llm": llm, "max_steps": max_steps, "max_seconds": max_seconds,
                        "last": last, **kwargs}
                return self.ask(q, conversation=thread, **opts)

            answer._followup = followup
        with ctx.store.session() as s:  # so notebooks can show thumbnails
            from sqlalchemy import select

            from vdisc.index.store import Video

            answer._paths = dict(s.execute(select(Video.name, Video.path)).all())
        return answer

    def export(self, result: Any, format: str = "srt", *, video: str | int | None = None) -> str:
        """An answer's or search result's moments as ``srt``, ``vtt``, ``chapters``, ``json`` or ``edl`` text.

        ``result`` is an Answer, a SearchResult, or the dict (or JSON text) of
        ``vdisc ask|search|export --json``; ``video`` keeps one video's moments
        (subtitles and chapters describe one video). Formats: ``vdisc.export``.
        """
        from vdisc import export

        export.writer(format)  # an unknown format is the first thing to hear about
        moments = export.moments_of(result, video=self._video_name(video))
        facts = export.locate(self._existing_store(), moments)
        return export.render(moments, format, fps=facts[moments.cues[0].video].fps or export.DEFAULT_FPS)

    def clip(self, result: Any, out: str | Path, *, video: str | int | None = None) -> "ClipReport":
        """Cut an answer's or search result's moments from their videos into one video file at ``out``.

        Moments play in time order per video, overlaps merged; the clip lasts
        their sum (``vdisc.export.cut_clip``).
        """
        from vdisc import export

        moments = export.moments_of(result, video=self._video_name(video))
        facts = export.locate(self._existing_store(), moments)
        return export.cut_clip(export.clip_parts(moments, facts), out)

    def _video_name(self, video: str | int | None) -> str | None:
        if video is None:
            return None
        store = self._existing_store()
        with store.session() as s:
            v = store.find_video(s, video)
            if v is None:
                raise LibraryError(f"no indexed video matches {video!r}; see vdisc ls")
            return v.name

    def browse(self, video: str | int | None = None, max_scenes: int = 24, *, page: int = 1,
               per_page: int = 20) -> Any:
        """The videos with durations and a bounded timeline of scene digests (what is said, shown, seen);
        ``per_page`` videos at a time, oldest first (``page`` of ``pages``)."""
        from vdisc.tools.browse import browse

        return browse(self._context(), None if video is None else str(video), max_scenes=max_scenes,
                      max_videos=per_page, page=page)

    def inspect(self, video: str | int, start: float, end: float, question: str, **options: Any) -> "InspectResult":
        """Zoom in on ``start``-``end`` seconds of a video: frames, words spoken and shown, best sub-window."""
        from vdisc.tools.zoom import inspect

        return inspect(self._context(), str(video), start, end, question, **options)

    def ground(self, video: str | int, start: float, end: float, query: str,
               channel: str | None = None) -> "GroundResult":
        """The precise start and end of a moment near ``start``-``end`` seconds: the whole utterance or the
        frames that show a text, with a confidence and the evidence. ``channel`` "speech" or "ocr": only
        what is said, or only what is shown."""
        from vdisc.tools.ground import ground

        return ground(self._context(), str(video), start, end, query, channel=channel)  # type: ignore[arg-type]

    def train_compressor(self, out: str | Path | None = None, *, init: str | Path | None = None, steps: int = 300,
                         batch_size: int = 8, lr: float = 1e-3, max_clips: int = 512, frames_per_clip: int = 16,
                         layers: int = 2, on_step: Callable[[int, float], None] | None = None,
                         order_bench: bool = False, resume: bool = False,
                         checkpoint_every: int = 50) -> "TrainReport":
        """Train inspect's clip compressor on this library's clips and save it (``<library>/compressor.safetensors``
        unless ``out``, which the default ``compressor="auto"`` then uses; else ``compressor=PATH``).
        ``on_step(step, loss)`` sees each step. ``order_bench``: train on the generated order benchmark
        instead (no indexed clips needed; the report's ``evaluation`` holds its held-out figures)."""
        from vdisc.index.models import TRAINED_COMPRESSOR
        from vdisc.training import train_compressor, train_order_bench

        target = Path(out) if out else self.path / TRAINED_COMPRESSOR
        if order_bench:
            return train_order_bench(self.registry, target, steps=steps, batch_size=batch_size, lr=lr, layers=layers,
                                     resume=resume, checkpoint_every=checkpoint_every, on_step=on_step)
        store = self._existing_store()  # a LibraryError (one line at the CLI) when nothing was indexed here
        return train_compressor(store, self.registry, Path(out) if out else self.path / TRAINED_COMPRESSOR,
                                init=Path(init) if init else None, steps=steps, batch_size=batch_size, lr=lr,
                                max_clips=max_clips, frames_per_clip=frames_per_clip, layers=layers,
                                on_step=on_step, resume=resume, checkpoint_every=checkpoint_every)

    def _planner(self, llm: Any) -> Any:
        from vdisc.agent import chat_model
        from vdisc.agent.llm import LLMPlanner
        from vdisc.agent.offline import OfflinePlanner

        if llm is None:
            ref = self.settings.models["llm"]
            if not chat_model.configured(ref):
                self._say(chat_model.offline_notice(ref), log=False)
                return OfflinePlanner()
            # a configured model that cannot be set up is an error, never a silent switch of planner
            # (llm="offline" asks for the offline planner explicitly)
            chat = chat_model.load(ref)
            return LLMPlanner(chat.model, chat.where)
        if isinstance(llm, str):
            if llm in ("offline", "none"):
                return OfflinePlanner()
            chat = chat_model.load(llm)
            return LLMPlanner(chat.model, chat.where)
        return LLMPlanner(llm, type(llm).__name__)

    def videos(self) -> list[VideoEntry]:
        """The indexed videos, oldest first."""
        from sqlalchemy import func, select

        from vdisc.index.store import Clip, Scene, Video

        store = self._existing_store()
        with store.session() as s:
            clips = dict(s.execute(select(Clip.video_id, func.count()).group_by(Clip.video_id)).all())
            scenes = dict(s.execute(select(Scene.video_id, func.count()).group_by(Scene.video_id)).all())
            return [
                VideoEntry(id=v.id, name=v.name, path=v.path, duration=v.duration, clips=clips.get(v.id, 0),
                           scenes=scenes.get(v.id, 0), channels=list(v.channels), status=v.status,
                           indexed_at=v.indexed_at)
                for v in s.scalars(select(Video).order_by(Video.id))
            ]

    def compressor_status(self) -> dict[str, str]:
        """Whether inspect's clip compressor is on, and from what: ``{"setting", "state", "detail"}``."""
        source = self.registry.compressor_source()
        setting = self.settings.compressor
        if source == "off":
            why = ("no trained weights in the library (vdisc train-compressor writes them)"
                   if setting.strip().lower() == "auto" else "switched off")
            return {"setting": setting, "state": "off", "detail": why}
        if source == "untrained":
            return {"setting": setting, "state": "on", "detail": "untrained: token reduction only, scores unchanged"}
        detail = f"trained weights {source}"
        temporal = self.path / "vectors" / "clip.temporal.faiss"  # index/writer.py adds it per indexed clip
        detail += ("; clips carry its temporal vectors (searched beside the visual ones)" if temporal.is_file()
                   else "; no clip has its temporal vector yet (index or re-index to add them)")
        return {"setting": setting, "state": "on", "detail": detail}

    def info(self, load_models: bool = False) -> dict[str, Any]:
        """Library path, schema, counts, decoder backends, device, model roles and the notices that hold."""
        from vdisc.index import decode

        out: dict[str, Any] = {
            "version": __version__,
            "library": str(self.settings.home),
            "exists": self.settings.db_path.exists(),
            "device": self.settings.device,
            "decoders": decode.available_backends(),
            "models": self.registry.status(load=load_models),
        }
        from vdisc.agent import chat_model

        out["models"]["llm"] = chat_model.status(self.settings.models["llm"])
        out["compressor"] = self.compressor_status()
        if load_models:
            out["device"] = self.registry.device
        if out["exists"]:
            out["schema_version"] = self.store.schema_version
            out["counts"] = self.store.counts()
            out["vectors"] = {f"{ix.level}.{ix.modality}": {"count": len(ix), "model": ix.model_key}
                              for ix in self.store.vector_indexes()}
        out["notices"] = self.notices()
        return out

    def _context(self) -> Any:
        from vdisc.tools.context import ToolContext

        return ToolContext(self._existing_store(), self.registry, self.settings)

    def _existing_store(self) -> "Store":
        """The store, or LibraryError if nothing was ever indexed here (reading never creates one)."""
        return self._open_store(create=False)

    def _open_store(self, create: bool) -> "Store":
        if self._store is None:
            from vdisc.index.store import Store

            # faiss-gpu is used only if it is installed and sees a GPU; "auto" lets it try
            self._store = Store(self.settings.home, create=create, gpu=self.settings.device != "cpu")
        return self._store
