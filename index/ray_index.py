"""Indexing on a Ray cluster: perception on workers, the one writer here.

    driver: admit each file (probe, fingerprint, unchanged?)  ──►  actor pool
    actor:  loads the perception models once; per video: decode → clips →
            ClipResult (``Indexer.perceive``, the same code a local run uses)
    driver: as results come back, commits each whole video in file order
            (``Indexer.commit``), exactly as a local run writes it

Nothing is written until a video's perception is back whole, so a worker
(or node) that dies mid-video costs only its redo: the actor is restarted
and the task retried by Ray, and past that the driver resubmits the video
to a fresh actor. Each video is committed once. Workers keep no
checkpoints (the library may be out of their reach); a run that is killed
redoes the perception of the videos it had not committed.

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
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vdisc.config import Settings
from vdisc.errors import ConfigError

from . import remote
from .checkpoint import Checkpoint
from .decode import VideoInfo
from .notices import Notice
from .pipeline import Admission, Indexer, IndexReport, Perceived, Progress, ProgressFn, failure_reason
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
    retries: int = Field(3, ge=0, description="times a video is retried after its worker died")

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
class _NoCheckpoint(Checkpoint):
    """Workers keep no checkpoints: the library may be out of their reach, and a retry starts over anyway."""

    def __init__(self, path: Path) -> None:
        super().__init__(Path(os.devnull), "none", path, {})

    def save_batch(self, clips: Any, state: Any) -> None:
        pass

    def save_speech(self, words: Any) -> None:
        pass


@dataclass
class WorkerResult:
    """What a worker sends back for one video: its perception, or why it failed."""

    perceived: Perceived | None
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
    """A Ray actor: the perception models, loaded once, and ``perceive`` for whole videos."""

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
        self._posted: dict[tuple[str, str], float] = {}

    def status(self) -> dict[str, Any]:
        """pid and the video being perceived (answered beside ``perceive``: the actor has two threads)."""
        return {"pid": os.getpid(), "path": self.current}

    def perceive(self, path: str, info: VideoInfo) -> WorkerResult:
        t0 = time.monotonic()
        self.current = path
        report = IndexReport(path=path, status="failed")
        try:
            # a URL (s3://, gs://, file://) is read through fsspec into a local copy for the decoders
            source = remote.as_path(path)
            perceived = self.indexer.perceive(source, info, report, _NoCheckpoint(Path(path)), None)
            out = WorkerResult(perceived)
        except Exception as exc:  # noqa: BLE001 - the file's failure, reported as a local run reports it
            out = WorkerResult(None, reason=failure_reason(exc, Path(path)))
        finally:
            self.current = None
        out.specs = {role: self.registry.spec(role) for role in PERCEPTION_ROLES}
        out.notices, out.pid, out.seconds = list(self.notices), os.getpid(), time.monotonic() - t0
        return out

    def _notice(self, msg: str) -> None:
        self.notices.append({"text": str(msg), "role": getattr(msg, "role", ""), "ref": getattr(msg, "ref", ""),
                             "short": getattr(msg, "short", "")})

    def _progress(self, event: Progress) -> None:
        key, now = (event.video, event.stage), time.monotonic()
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
        # where the time went, for benchmarks/ray_index.py: seconds to connect, to start the actors (their
        # model loads), to perceive and commit; and each video's perception on its worker
        self.timings: dict[str, float] = {}
        self.perceive_seconds: list[float] = []

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
        worker_cls, resources = self._worker_class(ray, len(jobs))
        actors: list[Any] = []  # every actor this run made, replacements too: all are killed at the end

        def new_actor() -> Any:
            actors.append(worker_cls.options(name=f"{ACTOR_NAME}-{run}-{len(actors) + 1}").remote(
                self.settings, relay_name))
            return actors[-1]

        t_start = time.monotonic()
        for _ in range(resources["actors"]):
            new_actor()
        # an actor joins once its models are loaded (status() answers): work starts with the first one,
        # and one that the cluster cannot place yet (no room, or still scaling up) does not hold the others
        starting = {a.status.remote(): a for a in actors}
        try:
            reports: list[IndexReport | None] = [a if isinstance(a, IndexReport) else None for a in admitted]
            todo, idle = deque(jobs), []
            tries = dict.fromkeys(jobs, 0)
            running: dict[Any, tuple[int, Any]] = {}
            done: dict[int, WorkerResult] = {}
            order = deque(jobs)  # committed in file order: the same video ids as a local run
            moved = time.monotonic()  # when an actor last started or a video last came back
            while order:
                while todo and idle:
                    i, actor = todo.popleft(), idle.pop()
                    job = admitted[i]
                    assert isinstance(job, Admission)
                    tries[i] += 1
                    running[actor.perceive.remote(str(job.path), job.info)] = (i, actor)
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
                    i, actor = running.pop(ref)
                    try:
                        done[i] = ray.get(ref)
                        self.perceive_seconds.append(done[i].seconds)
                        idle.append(actor)
                    except lost as exc:  # Ray's own restarts and retries are spent: a fresh actor, once more
                        log.warning("a Ray worker died perceiving %s: %s", admitted[i].path,  # type: ignore[union-attr]
                                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                        ray.kill(actor, no_restart=True)
                        fresh = new_actor()
                        starting[fresh.status.remote()] = fresh
                        if tries[i] <= self.options.retries:
                            todo.appendleft(i)
                        else:
                            done[i] = WorkerResult(None, reason=f"its Ray worker died {tries[i]} times")
                    except RayTaskError as exc:  # a bug on the worker, not a lost worker: this file fails
                        if os.environ.get("VDISC_DEBUG"):
                            raise
                        cause = getattr(exc, "cause", None) or exc
                        done[i] = WorkerResult(None, reason=f"unexpected {type(cause).__name__} on a Ray worker: "
                                                            f"{str(cause).splitlines()[0] if str(cause) else ''}")
                        idle.append(actor)
                while order and order[0] in done:
                    i = order.popleft()
                    reports[i] = self._commit(admitted[i], done.pop(i), force)  # type: ignore[arg-type]
            self._relay(ray, relay)
            self.timings["run"] = time.monotonic() - t_start - self.timings.get("start", 0.0)
            return [r for r in reports if r is not None]
        finally:
            for a in actors:
                ray.kill(a, no_restart=True)
            ray.kill(relay, no_restart=True)

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
            self.progress(Progress(**event))

    def _commit(self, job: Admission, result: WorkerResult, force: bool) -> IndexReport:
        for n in result.notices:  # what the worker's registry said (a role that is off), said here once
            notice = Notice(n["text"], n["role"], n["ref"], n["short"])
            if notice not in self._said:
                self._said.add(notice)
                self.registry.notify(notice)
        if result.perceived is None:  # as a local run leaves a file that failed: the stale row gone, no new one
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
        return self.indexer.commit(job, force, result.perceived)


def _default_cpus(nodes: list[dict[str, float]], gpus: float) -> float:
    """CPUs per actor: up to 4 (torch's threads in one process do well to about there), fewer where a
    node has fewer, or has to share them among its GPUs' actors."""
    share = [n.get("CPU", 0) / max(1.0, n.get("GPU", 0) // gpus if gpus else 1.0) for n in nodes if n.get("CPU", 0)]
    return float(max(1, min(4, int(min(share))))) if share else 1.0
