"""Indexing on a Ray cluster: perception on workers, the one writer here.

    driver: admit each file (probe, fingerprint, unchanged?)  ──►  actor pool
    actor:  loads the perception models once; per task: decode → clips →
            ClipResult (``Indexer.perceive``, the same code a local run uses)
    driver: as results come back, commits each whole video in file order
            (``Indexer.commit``), exactly as a local run writes it

A task is a whole video, or for a long file (``RayOptions.split``) its
speech and its frame parts by time range, put together exactly as one run
makes them (``index/split.py``): a seam's run is queued first, since the
file waits on it. Nothing is written until a video's perception is back
whole, so a worker (or node) that dies mid-task costs only its redo: the
actor is restarted and the task retried by Ray, and past that the driver
resubmits the task to a fresh actor. Each video is committed once. Workers
keep no checkpoints (the library may be out of their reach); a run that is
killed redoes the perception of the videos it had not committed.

Workers must see the files at the same paths as the driver (one machine,
or a shared filesystem), or read them from URLs through fsspec (object
storage: ``s3://``, ``gs://``; ``index/remote.py``), and have vdisc and its
models installed. Speech
matches a local run word for word when the actors run as many threads
(``OMP_NUM_THREADS``): Whisper's float sums depend on it. Ray is an
optional extra (``pip install 'vdisc[ray]'``); this module imports it only
when a run asks for it.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

from vdisc.config import Settings
from vdisc.errors import ConfigError

from . import remote
from .checkpoint import NoCheckpoint
from .decode import VideoInfo
from .notices import Notice
from .perceive import assign_words
from .pipeline import (Admission, FrameRange, Indexer, IndexReport, Perceived, Progress, ProgressFn,
                       failure_reason)
from .split import SplitFile, part_starts
from .store import Store

log = logging.getLogger("vdisc")

PERCEPTION_ROLES = ("visual", "ocr", "caption", "asr")  # what the workers load; the driver keeps "text"
PROGRESS_EVERY = 0.5  # seconds between a worker's progress posts for one stage (each is a remote call)
POLL = 0.25  # seconds the driver waits for a result before it relays progress again
START_TIMEOUT = 900.0  # seconds for the actors to be placed and load their models
ACTOR_NAME = "vdisc-perceive"  # actor names start so: ``ray.util.list_named_actors()`` finds a run's workers
INSTALL_HINT = "pip install 'vdisc[ray]'"


class RayOptions(BaseModel):
    """Where and how wide to run: ``address`` is local (start Ray here), auto (the cluster this machine
    is part of), ray://host:port (Ray Client) or host:port (a cluster's head)."""

    address: str = "local"
    actors: int | None = Field(None, ge=1, description="perception actors; default: one per GPU, else per CPU")
    cpus: float | None = Field(None, gt=0, description="CPUs reserved per actor; default up to 4 (a node's "
                               "CPUs shared among its GPUs, or all of a small node's)")
    gpus: float | None = Field(None, ge=0, description="GPUs per actor; default 1 where the cluster has GPUs")
    retries: int = Field(3, ge=0, description="times a task is retried after its worker died")
    split: float = Field(600.0, ge=0, description="seconds of a long file each actor perceives (its parts are "
                         "put together exactly, ``index/split.py``); 0: every file whole on one actor")

    @classmethod
    def parse(cls, value: "str | RayOptions") -> "RayOptions":
        if isinstance(value, RayOptions):
            return value
        address = str(value).strip()
        if not address:
            raise ConfigError("--ray needs local, auto, or a cluster address (ray://host:port or host:port)")
        return cls(address=address)


def import_ray() -> Any:
    """The ``ray`` module, or one clear error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"indexing on Ray needs ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> bool:
    """Join (or start) the Ray cluster; True when this call initialised Ray (and should shut it down)."""
    ray = import_ray()
    if ray.is_initialized():  # the caller set Ray up: use it as it is
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network call home
    kwargs: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False)
    if address == "local":
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"could not reach a Ray cluster at {address}: {first}") from None
    return True


# ---- the workers ----------------------------------------------------------------
@dataclass
class WorkerResult:
    """What a worker sends back for one task: its value (a whole video's ``Perceived``, a split file's
    words, or a time range's ``RangeRun``), or why it failed."""

    value: Any
    reason: str = ""
    specs: dict[str, Any] = field(default_factory=dict)  # role -> ModelSpec of what produced the vectors
    notices: list[dict[str, str]] = field(default_factory=list)
    pid: int = 0
    seconds: float = 0.0


class ProgressRelay:
    """A mailbox actor: workers post progress events, the driver drains them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def post(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)

    def drain(self) -> list[dict[str, Any]]:
        out, self.events = self.events, []
        return out


class PerceptionWorker:
    """A Ray actor: the perception models, loaded once; ``perceive`` for whole videos, ``speech`` and
    ``frames`` for the tasks of a split file."""

    def __init__(self, settings: Settings, relay: str) -> None:
        import ray

        from .models import Registry

        settings.apply_environment()
        self.relay = ray.get_actor(relay)  # by name: a handle as an argument would stop the actor restarting
        self.notices: list[dict[str, str]] = []
        self.registry = Registry(settings, notify=self._notice)
        for role in PERCEPTION_ROLES:  # now, in parallel across actors, not inside the first video
            self.registry.get(role)
        self.indexer = Indexer(settings, None, self.registry, self._progress)  # type: ignore[arg-type]
        self.current: str | None = None
        self._posted: dict[tuple[str, str, int | None], float] = {}

    def status(self) -> dict[str, Any]:
        """pid and the video being perceived (answered beside ``perceive``: the actor has two threads)."""
        return {"pid": os.getpid(), "path": self.current}

    def perceive(self, path: str, info: VideoInfo) -> WorkerResult:
        """A whole video."""
        report = IndexReport(path=path, status="failed")
        return self._task(path, lambda source: self.indexer.perceive(source, info, report, NoCheckpoint(source),
                                                                     None))

    def speech(self, path: str, info: VideoInfo) -> WorkerResult:
        """A split file's words (None without audio or ASR)."""
        return self._task(path, lambda source: self.indexer.transcribe(source, info))

    def frames(self, path: str, info: VideoInfo, span: FrameRange) -> WorkerResult:
        """One time range of a split file: a part, or a seam's run."""
        return self._task(path, lambda source: self.indexer.perceive_range(source, info, span))

    def _task(self, path: str, work: Callable[[Path], Any]) -> WorkerResult:
        t0 = time.monotonic()
        self.current = path
        try:
            # a URL (s3://, gs://, file://) is read through fsspec into a local copy for the decoders
            out = WorkerResult(work(remote.as_path(path)))
        except Exception as exc:  # noqa: BLE001 - the file's failure, reported as a local run reports it
            out = WorkerResult(None, reason=failure_reason(exc, Path(path)) or type(exc).__name__)
        finally:
            self.current = None
        out.specs = {role: self.registry.spec(role) for role in PERCEPTION_ROLES}
        out.notices, out.pid, out.seconds = list(self.notices), os.getpid(), time.monotonic() - t0
        return out

    def _notice(self, msg: str) -> None:
        self.notices.append({"text": str(msg), "role": getattr(msg, "role", ""), "ref": getattr(msg, "ref", ""),
                             "short": getattr(msg, "short", "")})

    def _progress(self, event: Progress) -> None:
        key, now = (event.video, event.stage, event.part), time.monotonic()
        if event.done < event.total and now - self._posted.get(key, -1e9) < PROGRESS_EVERY:
            return
        self._posted[key] = now
        self.relay.post.remote([event.model_dump()])  # fire and forget: progress never holds up perception


class _WorkerSpecs:
    """The driver's registry, except that the perception roles' specs are the workers' (no model load here)."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self.specs: dict[str, Any] = {}

    def spec(self, role: str) -> Any:
        if role in PERCEPTION_ROLES:
            return self.specs.get(role)
        return self._registry.spec(role)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)


# ---- the driver -------------------------------------------------------------------
class RayIndexer:
    """Indexes files with perception on a Ray cluster and the writes here, in file order."""

    def __init__(self, settings: Settings, store: Store, registry: Any, progress: ProgressFn | None,
                 options: RayOptions) -> None:
        import_ray()  # before any work: without ray this is one clear line
        self.settings, self.store, self.options = settings, store, options
        self.registry = _WorkerSpecs(registry)
        self.progress = progress or (lambda event: None)
        self.indexer = Indexer(settings, store, self.registry, self.progress)  # type: ignore[arg-type]
        self._said: set[str] = set()
        self._relaying = False
        self._parts: dict[str, _PartProgress] = {}  # a split file's frames progress, by the name events carry
        # where the time went, for benchmarks/ray_index.py: seconds to connect, to start the actors (their
        # model loads), to perceive and commit; and each task's perception on its worker
        self.timings: dict[str, float] = {}
        self.perceive_seconds: list[float] = []
        self.task_seconds: dict[str, float] = {}  # by kind: whole, speech, part, seam

    def index(self, files: list[Path], force: bool = False) -> list[IndexReport]:
        admitted = [self.indexer.admit(f, force) for f in files]
        jobs = [i for i, a in enumerate(admitted) if isinstance(a, Admission)]
        if not jobs:
            return [a for a in admitted if isinstance(a, IndexReport)]
        ray = import_ray()
        t0 = time.monotonic()
        started = connect(self.options.address)
        self.timings["connect"] = time.monotonic() - t0
        try:
            return self._run(ray, admitted, jobs, force)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray: Any, admitted: list[Admission | IndexReport], jobs: list[int],
             force: bool) -> list[IndexReport]:
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError, WorkerCrashedError
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        lost = (RayActorError, WorkerCrashedError, ObjectLostError)  # the worker, not the file: try again
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        run = uuid.uuid4().hex[:8]
        relay_name = f"vdisc-progress-{run}"
        relay = ray.remote(num_cpus=0, scheduling_strategy=here)(ProgressRelay).options(
            name=relay_name).remote()  # beside the driver
        self._relaying = True
        videos: dict[int, _Video] = {}
        for i in jobs:
            job = admitted[i]
            assert isinstance(job, Admission)
            videos[i] = _Video(job, self._split(job))
        todo = deque(task for v in videos.values() for task in v.tasks())
        worker_cls, resources = self._worker_class(ray, len(todo))
        actors: list[Any] = []  # every actor this run made, replacements too: all are killed at the end

        def new_actor() -> Any:
            actors.append(worker_cls.options(name=f"{ACTOR_NAME}-{run}-{len(actors) + 1}").remote(
                self.settings, relay_name))
            return actors[-1]

        def fail(video: _Video, reason: str, notices: list[dict[str, str]] | None = None) -> None:
            video.result = WorkerResult(None, reason=reason, notices=notices or [])
            for task in [t for t in todo if t.video is video]:  # its other tasks are of no use now
                todo.remove(task)

        t_start = time.monotonic()
        for _ in range(resources["actors"]):
            new_actor()
        # an actor joins once its models are loaded (status() answers): work starts with the first one,
        # and one that the cluster cannot place yet (no room, or still scaling up) does not hold the others
        starting = {a.status.remote(): a for a in actors}
        try:
            reports: list[IndexReport | None] = [a if isinstance(a, IndexReport) else None for a in admitted]
            idle: list[Any] = []
            running: dict[Any, tuple[_Task, Any]] = {}
            order = deque(jobs)  # committed in file order: the same video ids as a local run
            moved = time.monotonic()  # when an actor last started or a task last came back
            while order:
                while todo and idle:
                    task, actor = todo.popleft(), idle.pop()
                    task.tries += 1
                    running[task.submit(actor)] = (task, actor)
                if not running and not idle and not starting:
                    raise ConfigError("no Ray perception actor could start; see the Ray logs on the cluster")
                got, _ = ray.wait([*running, *starting], num_returns=1, timeout=POLL)
                self._relay(ray, relay)
                if got:
                    moved = time.monotonic()
                elif not running and not idle and time.monotonic() - moved > START_TIMEOUT:
                    raise ConfigError(f"the Ray cluster placed no perception actor ({resources['cpus']:g} CPU, "
                                      f"{resources['gpus']:g} GPU each) within {START_TIMEOUT:.0f} s; "
                                      "ask for smaller ones")
                for ref in got:
                    if ref in starting:
                        actor = starting.pop(ref)
                        try:
                            ray.get(ref)
                            idle.append(actor)
                            self.timings.setdefault("start", time.monotonic() - t_start)
                        except lost:  # it died loading its models: the others carry on
                            log.warning("a Ray perception actor failed to start")
                        continue
                    task, actor = running.pop(ref)
                    video = task.video
                    try:
                        out: WorkerResult = ray.get(ref)
                        idle.append(actor)
                    except lost as exc:  # Ray's own restarts and retries are spent: a fresh actor, once more
                        log.warning("a Ray worker died perceiving %s: %s", video.job.path,
                                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                        ray.kill(actor, no_restart=True)
                        fresh = new_actor()
                        starting[fresh.status.remote()] = fresh
                        if video.result is None:
                            if task.tries <= self.options.retries:
                                todo.appendleft(task)
                            else:
                                fail(video, f"its Ray worker died {task.tries} times")
                        continue
                    except RayTaskError as exc:  # a bug on the worker, not a lost worker: this file fails
                        if os.environ.get("VDISC_DEBUG"):
                            raise
                        idle.append(actor)
                        cause = getattr(exc, "cause", None) or exc
                        out = WorkerResult(None, reason=f"unexpected {type(cause).__name__} on a Ray worker: "
                                                        f"{str(cause).splitlines()[0] if str(cause) else ''}")
                    self.perceive_seconds.append(out.seconds)
                    self.task_seconds[task.kind] = self.task_seconds.get(task.kind, 0.0) + out.seconds
                    if video.result is not None:  # the file failed in another of its tasks
                        continue
                    if out.reason:
                        fail(video, out.reason, out.notices)
                        continue
                    todo.extendleft(video.took(task, out))  # a seam's run goes first: the file waits on it
                    if task.kind == "part":  # its frames are all done: the file's bar counts the part whole
                        assert task.span is not None and task.span.part is not None
                        name, duration = video.job.path.name, video.job.info.duration
                        self.progress(Progress(video=name, stage="frames", total=duration,
                                               done=self._parts[name].add(task.span.part, math.inf)))
                while order and videos[order[0]].result is not None:
                    i = order.popleft()
                    reports[i] = self._commit(videos[i].job, videos[i].result, force)  # type: ignore[arg-type]
            self._relay(ray, relay)
            self.timings["run"] = time.monotonic() - t_start - self.timings.get("start", 0.0)
            return [r for r in reports if r is not None]
        finally:
            for a in actors:
                ray.kill(a, no_restart=True)
            ray.kill(relay, no_restart=True)

    def _split(self, job: Admission) -> SplitFile | None:
        """A long file's parts, or None: perceived whole by one actor."""
        starts = part_starts(job.info.duration, self.options.split, self.settings)
        if len(starts) < 2:
            return None
        self._parts[job.path.name] = _PartProgress(starts, job.info.duration)
        return SplitFile(starts)

    def _worker_class(self, ray: Any, jobs: int) -> tuple[Any, dict[str, Any]]:
        """The actor class with its resources: a GPU each where the cluster has them, else CPUs."""
        opts = self.options
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        gpus = opts.gpus if opts.gpus is not None else (1.0 if any(n.get("GPU", 0) >= 1 for n in nodes) else 0.0)
        cpus = opts.cpus if opts.cpus is not None else _default_cpus(nodes, gpus)
        # actors are placed node by node: count what fits on each (two halves of two nodes are not one)
        fit = sum(int(min(n.get("CPU", 0) // cpus, n.get("GPU", 0) // gpus if gpus else 1 << 30)) for n in nodes)
        actors = max(1, min(opts.actors or fit, jobs))
        cls = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=opts.retries, max_task_retries=opts.retries,
                         max_concurrency=2)(PerceptionWorker)  # 2: status() answers while perceive() runs
        return cls, {"actors": actors, "cpus": cpus, "gpus": gpus}

    def _relay(self, ray: Any, relay: Any) -> None:
        if not self._relaying:
            return
        try:
            events = ray.get(relay.drain.remote())
        except ray.exceptions.RayError:  # the mailbox went down with its node: indexing goes on without bars
            log.warning("lost the Ray progress relay; progress is no longer shown")
            self._relaying = False
            return
        for event in events:
            p = Progress(**event)
            if p.part is not None:  # one part of a split file: the file's bar shows all its parts together
                parts = self._parts.get(p.video)
                if parts is None or p.part < 0:  # a seam's run redoes what a part did: not progress
                    continue
                p = Progress(video=p.video, stage=p.stage, done=parts.add(p.part, p.done), total=p.total)
            self.progress(p)

    def _commit(self, job: Admission, result: WorkerResult, force: bool) -> IndexReport:
        for n in result.notices:  # what the worker's registry said (a role that is off), said here once
            notice = Notice(n["text"], n["role"], n["ref"], n["short"])
            if notice not in self._said:
                self._said.add(notice)
                self.registry.notify(notice)
        if result.value is None:  # as a local run leaves a file that failed: the stale row gone, no new one
            report = job.report
            try:
                if job.old_id is not None:
                    self.store.delete_video(job.old_id)
            except Exception as exc:  # noqa: BLE001 - reported like any other failure of this file
                result.reason = failure_reason(exc, job.path)
            report.reason = result.reason
            report.seconds = round(time.monotonic() - job.t0, 3)
            return report
        self.registry.specs.update({k: v for k, v in result.specs.items() if v is not None})
        return self.indexer.commit(job, force, result.value)


class _Task:
    """One piece of work for an actor: a whole video, or a split file's speech, a part, or a seam's run."""

    def __init__(self, video: "_Video", kind: str, span: FrameRange | None = None) -> None:
        self.video, self.kind, self.span = video, kind, span  # kind: whole | speech | part | seam
        self.tries = 0

    def submit(self, actor: Any) -> Any:
        path, info = str(self.video.job.path), self.video.job.info
        if self.kind == "whole":
            return actor.perceive.remote(path, info)
        if self.kind == "speech":
            return actor.speech.remote(path, info)
        return actor.frames.remote(path, info, self.span)


class _Video:
    """One admitted file's tasks and, once they are all back, its ``result`` for the writer."""

    def __init__(self, job: Admission, split: SplitFile | None) -> None:
        self.job, self.split = job, split
        self.result: WorkerResult | None = None
        self.words: Any = None
        self.speech_done = not job.info.has_audio
        self.specs: dict[str, Any] = {}
        self.notices: list[dict[str, str]] = []
        self.seconds = 0.0

    def tasks(self) -> list[_Task]:
        if self.split is None:
            return [_Task(self, "whole")]
        speech = [] if self.speech_done else [_Task(self, "speech")]  # first: the longest task of the file
        return speech + [_Task(self, "part", span) for span in self.split.parts()]

    def took(self, task: _Task, out: WorkerResult) -> list[_Task]:
        """Takes a task's result; returns the task it lets start (a seam's run), if any."""
        if task.kind == "whole":
            self.result = out
            return []
        assert self.split is not None
        self.specs.update({k: v for k, v in out.specs.items() if v is not None})
        self.notices += [n for n in out.notices if n not in self.notices]
        self.seconds += out.seconds
        follow = None
        if task.kind == "speech":
            self.words, self.speech_done = out.value, True
        elif task.kind == "part":
            assert task.span is not None and task.span.part is not None
            follow = self.split.part_done(task.span.part, out.value)
        else:
            follow = self.split.seam_done(out.value)
        if self.split.done and self.speech_done:
            self.result = self._whole()
        return [] if follow is None else [_Task(self, "seam", follow)]

    def _whole(self) -> WorkerResult:
        """The parts put together, with their words, as one actor would have perceived the file."""
        split = self.split
        assert split is not None
        if not split.clips:
            return WorkerResult(None, reason=f"{self.job.path}: no frames could be decoded")
        assign_words(split.clips, self.words or [])
        channels = ["speech"] * (self.words is not None) + split.channels
        return WorkerResult(Perceived(split.clips, channels, split.decoder, split.end), specs=self.specs,
                            notices=self.notices, seconds=self.seconds)


class _PartProgress:
    """Media seconds done of a split file's frames: its parts' progress summed."""

    def __init__(self, starts: list[float], duration: float) -> None:
        self.bounds = list(zip(starts, [*starts[1:], duration]))
        self.done = [0.0] * len(starts)

    def add(self, part: int, done: float) -> float:
        start, end = self.bounds[part]
        # never back: a retried part starts over, and a part's last events may come after its result
        self.done[part] = max(self.done[part], min(max(done - start, 0.0), end - start))
        return sum(self.done)


def _default_cpus(nodes: list[dict[str, float]], gpus: float) -> float:
    """CPUs per actor: up to 4 (torch's threads in one process do well to about there), fewer where a
    node has fewer, or has to share them among its GPUs' actors."""
    share = [n.get("CPU", 0) / max(1.0, n.get("GPU", 0) // gpus if gpus else 1.0) for n in nodes if n.get("CPU", 0)]
    return float(max(1, min(4, int(min(share))))) if share else 1.0
