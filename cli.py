"""The `vdisc` command: a thin Typer shell over ``vdisc.Library``.

It parses flags, calls the API, prints, and turns library errors into one
line on stderr with a non-zero exit (``VDISC_DEBUG=1`` shows tracebacks).
Nothing heavy is imported until a command runs, so ``vdisc --help`` is fast.
It is one file over 500 lines on purpose: every command is a few lines of
flag parsing over one ``Library`` method, and reading them side by side is
how their options stay alike; logic that grows here belongs in the API.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import typer

if TYPE_CHECKING:
    from vdisc.index.ray_index import RayOptions

app = typer.Typer(
    name="vdisc",
    help="Find moments in long videos: index them, search them, ask about them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)

LibraryOpt = typer.Option(None, "--library", "-L", help="Library directory [env VDISC_HOME; default ~/.vdisc]")
DeviceOpt = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N [env VDISC_DEVICE]")
OfflineOpt = typer.Option(None, "--offline/--online", help="Never contact the Hugging Face hub [env VDISC_OFFLINE]")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table")
VisualOpt = typer.Option(None, "--visual-model", help="open_clip NAME@TAG, hf-hub:org/x, a directory, or none")
TextOpt = typer.Option(None, "--text-model", help="sentence-transformers name, hf-hub:org/x, a directory, or none")
AsrOpt = typer.Option(None, "--asr-model", help="Whisper size (tiny.en, small, ...), a directory, or none")
OcrOpt = typer.Option(None, "--ocr-model", help="rapidocr or none")
CaptionOpt = typer.Option(None, "--caption-model", help="auto | none | hf:<model id> | openai:<model>")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="Say every notice about optional model roles (visual, "
                          "captions, LLM), not only the first time for this library")
LastOpt = typer.Option(None, "--last", help="Only the final stretch of each video, e.g. 10m, 90s, 1h30m, 45 "
                       "(seconds); for a live video, the latest media")


def _err(message: str) -> None:
    typer.echo(f"vdisc: {message}", err=True)


def _cli_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map errors to one line and an exit code; VDISC_DEBUG=1 re-raises."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vdisc.errors import VdiscError

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            _err("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the edge: everything becomes one line
            if os.environ.get("VDISC_DEBUG"):
                raise
            if isinstance(exc, VdiscError):
                _err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                raise typer.Exit(1) from None
            if isinstance(exc, ValueError) and "validation error" in str(exc):
                _err("invalid setting: " + _pydantic_line(exc))
                raise typer.Exit(2) from None
            _err(f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                 "(set VDISC_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None

    return wrapper


def _pydantic_line(exc: Exception) -> str:
    errors = getattr(exc, "errors", lambda: [])()
    if errors:
        e = errors[0]
        return f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}"
    return str(exc).splitlines()[0]


class _Notices:
    """Where the library's notices go: one "vdisc: warning:" line each on stderr, nothing with --quiet.

    Inside ``gathered()`` notices about optional roles are held and said as one line when it ends
    (an answer comes with at most one notice line); a command that fails drops them.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.held: list[Any] | None = None

    def __call__(self, msg: str) -> None:
        if self.quiet:
            return
        if self.held is not None and getattr(msg, "role", None):
            self.held.append(msg)
            return
        typer.echo(f"vdisc: warning: {msg}", err=True)

    @contextlib.contextmanager
    def gathered(self, enabled: bool = True) -> Iterator[None]:
        if not enabled or self.held is not None:
            yield
            return
        self.held = []
        try:
            yield
        except BaseException:
            self.held = None
            raise
        held, self.held = self.held, None
        if len(held) == 1:
            self(held[0])
        elif held:
            self("; ".join(n.short for n in held) + " (vdisc info says why and how to enable them; said once "
                 "per library, --verbose says them every time)")


def _library(library: Optional[Path], device: Optional[str] = None, offline: Optional[bool] = None,
             progress: Any = None, quiet: bool = False, compressor: Optional[str] = None, verbose: bool = False,
             **models: Optional[str]) -> Any:
    """The Library for a command. Notices about optional roles are said once per library (remembered
    there), every time with ``verbose``, never with ``quiet`` (and then not remembered either)."""
    from vdisc import Library

    notify = _Notices(quiet)

    import warnings

    # library warnings (a truncated file, say) become one "vdisc: warning:" line, or nothing with --quiet
    warnings.showwarning = lambda message, *_args, **_kw: notify(str(message))

    return Library(library, device=device, offline=offline, notify=notify, notify_once=not (quiet or verbose),
                   progress=progress, compressor=compressor, models={k: v for k, v in models.items() if v})


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def fmt_time(seconds: float) -> str:
    """Seconds as h:mm:ss.s (or m:ss.s under an hour) for people."""
    seconds = max(0.0, float(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h else f"{int(m)}:{s:04.1f}"


def _ray_options(ray: str | None, split: str | None) -> str | RayOptions | None:
    """``--ray`` and ``--ray-split`` as the API takes them (a bad value is one line before any loading)."""
    if split is None:
        return ray
    if ray is None:
        raise _config_error("--ray-split goes with --ray")
    from vdisc.index.ray_index import RayOptions
    from vdisc.tools.search import parse_duration

    seconds = 0.0 if split.strip() in ("0", "0s") else parse_duration(split)
    return RayOptions.parse(ray).model_copy(update={"split": seconds})


@app.command()
@_cli_errors
def index(
    paths: Optional[list[str]] = typer.Argument(None, help="Video files or folders (walked recursively), or "
                                                "fsspec URLs (s3://bucket/x.mp4, gs://bucket/dir/)"),
    library: Optional[Path] = LibraryOpt,
    force: bool = typer.Option(False, "--force", help="Re-index files that are already indexed"),
    follow: Optional[str] = typer.Option(
        None, "--follow", metavar="SOURCE",
        help="Index a live or growing source as it plays: a stream URL (HLS, RTSP, HTTP), a file still being "
             "written (MPEG-TS, MKV, fragmented MP4) or a device (v4l2:/dev/video0). Ctrl-C stops it."),
    duration: Optional[str] = typer.Option(None, "--duration", help="With --follow: stop after this much media "
                                           "(90s, 10m, 1h30m)"),
    idle: float = typer.Option(30.0, "--idle", help="With --follow: a file that stops growing this many "
                               "seconds has ended"),
    ray: Optional[str] = typer.Option(
        None, "--ray", metavar="CLUSTER",
        help="Perceive on a Ray cluster (pip install 'vdisc[ray]'): local (start one here), auto (the cluster "
             "this machine is in), ray://host:port or host:port. Workers must see the files at the same paths, "
             "or be given URLs they can read (object storage through fsspec)."),
    ray_split: Optional[str] = typer.Option(
        None, "--ray-split", metavar="DURATION",
        help="With --ray: perceive a file at least twice this long in parts of about this much media at once, "
             "put together exactly as one run makes it (default 10m; 0: every file whole on one actor)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or warnings"),
    verbose: bool = VerboseOpt,
    json_out: bool = JsonOpt,
    device: Optional[str] = DeviceOpt,
    offline: Optional[bool] = OfflineOpt,
    visual_model: Optional[str] = VisualOpt,
    text_model: Optional[str] = TextOpt,
    asr_model: Optional[str] = AsrOpt,
    ocr_model: Optional[str] = OcrOpt,
    caption_model: Optional[str] = CaptionOpt,
) -> None:
    """Index videos into the library (speech, on-screen text, visuals, captions)."""
    show_bars = not quiet and not json_out and sys.stderr.isatty()
    if follow is not None:
        if paths:
            raise _config_error("give either files to index or --follow SOURCE, not both")
        if ray is not None:
            raise _config_error("--ray indexes files; --follow runs here")
        from vdisc.tools.search import parse_duration

        seconds = parse_duration(duration) if duration else None  # a bad value is one line before any loading
        lib = _library(library, device, offline, quiet=quiet, verbose=verbose, visual=visual_model, text=text_model,
                       asr=asr_model, ocr=ocr_model, caption=caption_model)
        _follow(lib, follow, seconds, idle, json_out, quiet, show_bars)
        return
    if not paths:
        raise _config_error("give video files or folders to index (or --follow SOURCE)")
    on_ray = _ray_options(ray, ray_split)
    with _ProgressBars(show_bars) as bars:
        lib = _library(library, device, offline, progress=bars.update, quiet=quiet, verbose=verbose,
                       visual=visual_model, text=text_model, asr=asr_model, ocr=ocr_model, caption=caption_model)
        reports = lib.index(*paths, force=force, ray=on_ray)
    if json_out:
        _print_json([r.model_dump() for r in reports])
    else:
        for r in reports:
            name = Path(r.path).name
            if r.status == "indexed":
                typer.echo(f"indexed {name}: {fmt_time(r.duration)}, {r.clips} clips, {r.scenes} scenes, "
                           f"{r.words} words [{', '.join(r.channels) or 'no channels'}] in {r.seconds:.1f} s"
                           + (f" (resumed at {fmt_time(r.resumed_from)}: an interrupted run had done "
                              f"{100 * r.resumed_from / max(r.duration, 1e-9):.0f}%)" if r.resumed_from else ""))
            elif r.status == "unchanged":
                typer.echo(f"unchanged {name}: {r.reason}")
            else:
                _err(f"failed {r.path}: {r.reason.removeprefix(f'{r.path}: ')}")
    if reports and all(r.status == "failed" for r in reports):
        raise typer.Exit(1)


@app.command()
@_cli_errors
def search(
    query: str = typer.Argument(..., help="What to look for, in your own words"),
    library: Optional[Path] = LibraryOpt,
    top_k: int = typer.Option(10, "--top-k", "-k", help="How many moments to return"),
    video: Optional[str] = typer.Option(None, "--video", help="Only this video (id, path or file name)"),
    level: Optional[str] = typer.Option(None, "--level", help="video | day | hour | scene | clip | frame"),
    modality: Optional[str] = typer.Option(None, "--modality", help="speech | ocr | caption | summary | visual"),
    last: Optional[str] = LastOpt,
    order: str = typer.Option("relevance", "--order", help="relevance | earliest | latest: the relevant "
                              "moments by score, or in time order (first / most recent first)"),
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
    device: Optional[str] = DeviceOpt,
    offline: Optional[bool] = OfflineOpt,
    visual_model: Optional[str] = VisualOpt,
    text_model: Optional[str] = TextOpt,
) -> None:
    """Search the library: ranked moments, no agent."""
    from vdisc.tools.search import parse_duration

    seconds = None if last is None else parse_duration(last)  # a bad value is one line before any loading
    lib = _library(library, device, offline, verbose=verbose, visual=visual_model, text=text_model)
    with lib.notify.gathered(not verbose):
        result = lib.search(query, top_k=top_k, video=video, level=level, modality=modality, last=seconds,
                            order=order)
    if json_out:
        _print_json(result.to_dict())
        return
    if not result.hits:
        typer.echo("no matches")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for col in ("#", "video", "level", "start", "end", "score", "snippet"):
        table.add_column(col, overflow="fold" if col == "snippet" else "ellipsis")
    for i, h in enumerate(result.hits, 1):
        table.add_row(str(i), h.video, h.level, fmt_time(h.start), fmt_time(h.end), f"{h.score:.4f}", h.snippet)
    Console().print(table)


def _follow(lib: Any, source: str, duration: float | None, idle: float, json_out: bool, quiet: bool,
            live: bool) -> None:
    """Follow until the source ends, --duration, or Ctrl-C (which commits what is complete first)."""
    import signal
    import threading

    handle = lib.follow(source, duration=duration, idle=idle)
    stopping = threading.Event()

    def on_interrupt(*_: Any) -> None:
        if stopping.is_set():  # a second Ctrl-C: leave now (committed clips are safe)
            raise KeyboardInterrupt
        stopping.set()
        handle.follower.stop.set()
        if not quiet:
            _err("stopping: committing the clips that are complete (Ctrl-C again to quit at once)")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        shown = 0
        while handle.running:
            handle.wait(1.0)
            r = handle.report
            if live and r.clips != shown:  # a status line per commit, on a terminal
                shown = r.clips
                typer.echo(f"following {source}: {r.clips} clips, {fmt_time(r.media_seconds)} indexed", err=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    r = handle.report
    if json_out:
        _print_json(r.model_dump())
    elif r.status == "failed":
        _err(f"failed {source}: {r.reason.removeprefix(f'{source}: ')}")
    else:
        how = "the source ended" if r.status == "ended" else "stopped"
        typer.echo(f"followed {source}: {r.clips} clips, {fmt_time(r.media_seconds)} of media ({how}); "
                   f"the video is {fmt_time(r.duration)} long")
    if r.status == "failed":
        raise typer.Exit(1)


def _config_error(message: str) -> Exception:
    from vdisc.errors import ConfigError

    return ConfigError(message)


def parse_time(text: str) -> float:
    """Seconds from '75', '75.5', '1:15' or '0:01:15'."""
    from vdisc.errors import ConfigError

    try:
        parts = [float(p) for p in text.strip().split(":")]
    except ValueError:
        raise ConfigError(f"bad time {text!r}: use seconds, mm:ss or hh:mm:ss") from None
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts):
        raise ConfigError(f"bad time {text!r}: use seconds, mm:ss or hh:mm:ss")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def parse_window(text: str) -> tuple[float, float]:
    from vdisc.errors import ConfigError

    start, sep, end = text.partition("-")
    if not sep:
        raise ConfigError(f"bad window {text!r}: use START-END, e.g. 12:30-13:10")
    return parse_time(start), parse_time(end)


@app.command()
@_cli_errors
def ask(
    question: str = typer.Argument(..., help="Your question about the videos"),
    library: Optional[Path] = LibraryOpt,
    video: Optional[str] = typer.Option(None, "--video", help="Only this video (id, path or file name)"),
    llm: Optional[str] = typer.Option(None, "--llm", help="Chat model (provider:model, or a model at "
                                      "VDISC_LLM_BASE_URL); 'offline' for no LLM [env VDISC_LLM_MODEL]"),
    max_steps: int = typer.Option(12, "--max-steps", help="Most tool calls before answering"),
    last: Optional[str] = LastOpt,
    json_out: bool = JsonOpt,
    trace: bool = typer.Option(False, "--trace", help="Show each step as it happens"),
    continue_: bool = typer.Option(False, "--continue", help="A follow-up to the library's latest conversation "
                                   "(\"and right after?\" is read against its last answer)"),
    conversation: Optional[str] = typer.Option(None, "--conversation", help="A follow-up to this conversation "
                                               "(the id in an answer's --json)"),
    verbose: bool = VerboseOpt,
    device: Optional[str] = DeviceOpt,
    offline: Optional[bool] = OfflineOpt,
) -> None:
    """Ask a question: an agent searches, inspects and grounds, then answers with moments."""
    from vdisc.agent import conversation as conv
    from vdisc.errors import ConfigError

    def show(event: dict[str, Any]) -> None:
        if event["event"] == "tool":
            args = ", ".join(f"{k}={v!r}" for k, v in event["args"].items())
            typer.echo(f"[{event['step']}] {event['tool']}({args})", err=True)
        else:
            status = f"error: {event['error']}" if event["error"] else f"{event['moments']} moments"
            typer.echo(f"    -> {status} in {event['seconds']:.2f} s", err=True)

    from vdisc.tools.search import parse_duration

    seconds = None if last is None else parse_duration(last)
    lib = _library(library, device, offline, verbose=verbose)
    if continue_ and conversation is None:
        conversation = conv.latest(lib.settings.home)
        if conversation is None:
            raise ConfigError("--continue: this library has no conversation yet; ask a first question")
    with lib.notify.gathered(not verbose and not trace):  # --trace: notices in their place among the steps
        answer = lib.ask(question, video=video, llm=llm, max_steps=max_steps, on_event=show if trace else None,
                         last=seconds, conversation=conversation)
    if json_out:
        _print_json(answer.to_dict(trace=trace))
        typer.echo(f"({answer.steps} tool calls, {answer.planner} planner)", err=True)
        return
    from vdisc.agent.answer import span_text
    from vdisc.timefmt import hms

    typer.echo(answer.answer)  # the short reply first, what it rests on under it
    if answer.explanation and answer.explanation != answer.answer:
        typer.echo(answer.explanation)
    for sp in answer.spans:
        typer.echo(f"  {span_text(sp)}  (confidence {sp.confidence:.2f})")
    if answer.evidence:
        typer.echo("evidence:")
        for e in answer.evidence:
            typer.echo(f"  {hms(e.start)}–{hms(e.end)} {e.video} [{e.tool}] {e.text}")
    typer.echo(f"({answer.steps} tool calls, {answer.planner} planner)", err=True)


@app.command("inspect")
@_cli_errors
def inspect_cmd(
    video: str = typer.Argument(..., help="Video id, path or file name"),
    window: str = typer.Argument(..., help="START-END as seconds, mm:ss or hh:mm:ss, e.g. 12:30-13:10"),
    question: str = typer.Argument(..., help="What to look for in the window"),
    library: Optional[Path] = LibraryOpt,
    fps: float = typer.Option(4.0, "--fps", help="Frames per second to look at (capped at 48 frames)"),
    compressor: Optional[str] = typer.Option(None, "--compressor", help="auto (on with the library's trained "
                                             "weights) | off | untrained | a weights file [env VDISC_COMPRESSOR]"),
    json_out: bool = JsonOpt,
    device: Optional[str] = DeviceOpt,
    offline: Optional[bool] = OfflineOpt,
) -> None:
    """Zoom in on a window of a video: best sub-window, words spoken and shown."""
    start, end = parse_window(window)
    lib = _library(library, device, offline, compressor=compressor)
    result = lib.inspect(video, start, end, question, fps=fps)
    if json_out:
        _print_json(result.model_dump())
        return
    typer.echo(f"{result.video} {fmt_time(result.start)}-{fmt_time(result.end)}: best "
               f"{fmt_time(result.best_start)}-{fmt_time(result.best_end)} ({result.source}, "
               f"confidence {result.confidence:.2f})")
    for sp in result.spoken:
        typer.echo(f"  said  {fmt_time(sp.start)}-{fmt_time(sp.end)}  {sp.text}")
    for sh in result.shown:
        typer.echo(f"  shown {fmt_time(sh.start)}-{fmt_time(sh.end)}  {sh.text}")
    if result.caption:
        typer.echo(f"  seen  {result.caption}")
    if result.best is not None:
        typer.echo(f"  pictures: best {fmt_time(result.best.start)}-{fmt_time(result.best.end)} "
                   f"(similarity {result.best.score:.3f}); {result.frames} frames, "
                   f"{result.tokens_in} -> {result.tokens_out} visual tokens")


@app.command("train-compressor")
@_cli_errors
def train_compressor_cmd(
    library: Optional[Path] = LibraryOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="Weights file (default: <library>/compressor.safetensors)"),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from these weights instead of the no-op"),
    steps: int = typer.Option(300, "--steps", min=1, help="Optimisation steps"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Clips per step (the contrastive "
                                             "batch; default 8, 64 with --order-bench)"),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Learning rate (AdamW; default 1e-3, 3e-3 with "
                                       "--order-bench)"),
    max_clips: int = typer.Option(512, "--max-clips", min=1, help="Most indexed clips to train on"),
    frames_per_clip: int = typer.Option(16, "--frames-per-clip", min=1, help="Most frames decoded per clip"),
    layers: int = typer.Option(2, "--layers", min=1, help="Mamba blocks (for a new compressor)"),
    order_bench: bool = typer.Option(False, "--order-bench", help="Train on the generated order benchmark "
                                     "(frame order; text model as target) and print its held-out evaluation"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint beside --out"),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", min=0, help="Steps between checkpoints (0: none)"),
    device: Optional[str] = DeviceOpt,
    visual_model: Optional[str] = VisualOpt,
) -> None:
    """Train inspect's clip compressor on the library's clips (contrastive distillation; GPU if present),
    or with --order-bench on the generated order benchmark (it then becomes the clips' temporal vector)."""
    lib = _library(library, device, visual=visual_model)

    def show(step: int, loss: float) -> None:
        if step % 10 == 0 or step == steps - 1:
            typer.echo(f"step {step + 1}/{steps} loss {loss:.4f}", err=True)

    batch_size = batch_size or (64 if order_bench else 8)
    lr = lr if lr is not None else (3e-3 if order_bench else 1e-3)
    report = lib.train_compressor(out, init=init, steps=steps, batch_size=batch_size, lr=lr, max_clips=max_clips,
                                  frames_per_clip=frames_per_clip, layers=layers, on_step=show,
                                  order_bench=order_bench, resume=resume, checkpoint_every=checkpoint_every)
    if report.evaluation is not None:
        from vdisc.evaluation.order_bench import table

        typer.echo(table(report.evaluation))
        typer.echo(f"saved {report.path} ({report.pairs} generated clips, {report.steps} steps, "
                   f"{report.seconds:.0f} s); use it with --compressor {report.path}")
        return
    typer.echo(f"saved {report.path} ({report.pairs} clips, {report.steps} steps, loss {report.losses[0]:.4f} -> "
               f"{report.losses[-1]:.4f}, {report.seconds:.0f} s); use it with --compressor {report.path}")


@app.command()
@_cli_errors
def browse(
    library: Optional[Path] = LibraryOpt,
    video: Optional[str] = typer.Option(None, "--video", help="Only this video (id, path or file name)"),
    max_scenes: int = typer.Option(24, "--max-scenes", help="Most timeline entries per video"),
    page: int = typer.Option(1, "--page", min=1, help="Which page of videos"),
    per_page: int = typer.Option(20, "--per-page", min=1, max=200, help="Videos per page"),
    json_out: bool = JsonOpt,
) -> None:
    """Timeline of each video: what is said, shown and seen, scene by scene."""
    view = _library(library).browse(video, max_scenes=max_scenes, page=page, per_page=per_page)
    if json_out:
        _print_json(view.model_dump())
        return
    for v in view.videos:
        live = ", live" if v.status == "live" else ""  # still growing: its end is the latest media
        unit = f"; by {v.unit}" if v.unit != "scene" else ""
        typer.echo(f"{v.video} ({fmt_time(v.duration)}{live}, {v.clips} clips; {', '.join(v.channels)}{unit})")
        for sc in v.scenes:
            parts = [f"said: {sc.said}" if sc.said else "", f"shown: {sc.shown}" if sc.shown else "",
                     f"seen: {sc.seen}" if sc.seen else ""]
            typer.echo(f"  {fmt_time(sc.start)}-{fmt_time(sc.end)}  " + " | ".join(p for p in parts if p))
    if view.pages > 1:
        more = f"; --page {view.page + 1} for the next" if view.page < view.pages else ""
        typer.echo(f"(page {view.page} of {view.pages}, {view.total_videos} videos{more})")


@app.command("eval")
@_cli_errors
def eval_cmd(
    dataset: Path = typer.Argument(..., help="JSONL: video, question, spans, answer, options, kind per line"),
    library: Optional[Path] = LibraryOpt,
    index_missing: bool = typer.Option(False, "--index-missing", help="Index dataset videos not in the library"),
    planner: str = typer.Option("offline", "--planner", help="offline | llm (the configured VDISC_LLM_MODEL)"),
    baseline: bool = typer.Option(False, "--baseline", help="Also score plain search (top hit) in the same run"),
    max_steps: int = typer.Option(12, "--max-steps", help="Most tool calls per question"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write per-question records here (JSONL)"),
    replay: Optional[Path] = typer.Option(None, "--replay", help="Record tool results and LLM replies to this "
                                          "file, and replay those it already holds"),
    calibrate: Optional[Path] = typer.Option(None, "--calibrate", help="Run with no \"not found\" cut and fit "
                                             "it for the text model: absent questions below, found moments "
                                             "above; merged into this JSON file (agent/calibration.json "
                                             "format). Fit on a dev split only"),
    json_out: bool = JsonOpt,
    device: Optional[str] = DeviceOpt,
    offline: Optional[bool] = OfflineOpt,
) -> None:
    """Score vdisc on a dataset: grounding R@1/mIoU, accuracy, latency, by kind."""
    from vdisc.errors import ConfigError
    from vdisc.evaluation import dataset as ds
    from vdisc.evaluation.runner import run

    if planner not in ("offline", "llm"):
        raise ConfigError("--planner must be offline or llm")
    items = ds.load(dataset)
    lib = _library(library, device, offline, quiet=True)
    from vdisc.agent.replay import ReplayCache

    cache = ReplayCache(replay) if replay is not None else None
    if calibrate is not None:
        if planner != "offline":
            raise ConfigError("--calibrate fits the offline planner's cut: use it with --planner offline")
        lib.settings.min_confidence = 0.0
    result = run(lib, items, planner=planner, baseline=baseline, index_missing=index_missing, max_steps=max_steps,
                 replay=cache)
    if calibrate is not None:
        _write_calibration(calibrate, lib.settings.models.get("text", ""), dataset, result.records)
    if out is not None:
        rows = result.records + (result.baseline_records or [])
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    if json_out:
        _print_json({"metrics": result.metrics, "baseline": result.baseline})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("kind", no_wrap=True, min_width=max(len(k) for k in ["all", *result.metrics["by_kind"]]))
    table.add_column("n")
    for col in ("R@1 0.3", "R@1 0.5", "R@1 0.7", "mIoU", "hit", "accuracy", "found", "p50 s", "tools"):
        table.add_column(col)
    if result.baseline is not None:
        for col in ("search R@1 0.5", "search hit", "search acc."):
            table.add_column(col)
    groups = [("all", result.metrics, result.baseline)] + [
        (k, m, (result.baseline or {}).get("by_kind", {}).get(k)) for k, m in result.metrics["by_kind"].items()]
    for kind, m, b in groups:
        row = [kind, str(m["questions"]), *_grounding_cells(m), _accuracy(m), _rate(m.get("found")),
               f"{m.get('latency', {}).get('p50', 0):.2f}", str(m.get("mean_tool_calls", ""))]
        if result.baseline is not None:
            cells = _grounding_cells(b or {})
            row += [cells[1], cells[4], _accuracy(b or {})]
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 160).print(table)  # a pipe gets the whole table
    unparseable = result.metrics.get("mcq", {}).get("unparseable", 0)
    if unparseable:
        typer.echo(f"{unparseable} multiple-choice answers named no single option (counted wrong)", err=True)


def _write_calibration(path: Path, text_model: str, dataset: Path, records: list[dict[str, Any]]) -> None:
    from vdisc.evaluation.calibration import fit
    from vdisc.errors import ConfigError

    try:
        fitted = fit(records)
    except ValueError as exc:
        raise ConfigError(f"--calibrate: {exc}") from None
    table = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    table.setdefault("text_models", {})[text_model] = {**fitted, "dataset": dataset.name}
    path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"calibrated for {text_model}: not found below {fitted['min_confidence']} "
               f"({fitted['absent_rejected']:.0%} of {fitted['absent']} absent questions turned away, "
               f"{fitted['found_kept']:.0%} of {fitted['found']} found moments kept); written to {path}", err=True)


def _grounding_cells(m: dict[str, Any]) -> list[str]:
    """R@1 at 0.3 / 0.5 / 0.7, mIoU and the hit rate, as table cells."""
    g = m.get("grounding")
    return [f"{g[f'r1@{t}']:.2f}" for t in (0.3, 0.5, 0.7)] + [f"{g['miou']:.2f}", f"{g['hit']:.2f}"] if g \
        else ["-"] * 5


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _accuracy(m: dict[str, Any]) -> str:
    parts = [m[k] for k in ("mcq", "open") if k in m]
    if not parts:
        return "-"
    n = sum(p["n"] for p in parts)
    return f"{sum(p['accuracy'] * p['n'] for p in parts) / n:.2f}"


@app.command("rm")
@_cli_errors
def rm(
    videos: list[str] = typer.Argument(..., help="Videos to remove (id, path or file name)"),
    library: Optional[Path] = LibraryOpt,
) -> None:
    """Remove videos (their rows and vectors) from the library; the files stay."""
    lib = _library(library, quiet=True)
    for v in videos:
        typer.echo(f"removed {lib.remove(v)}")


@app.command()
@_cli_errors
def compact(
    library: Optional[Path] = LibraryOpt,
    merge_size: Optional[int] = typer.Option(None, "--merge-size", min=1, help="Merge neighbouring sealed "
                                             "segments up to this many vectors (default: the seal size, 65536); "
                                             "fewer, larger segments make unfiltered search of a big library faster"),
    json_out: bool = JsonOpt,
) -> None:
    """Drop deleted rows' vectors from disk and merge small vector segments (search results stay the same)."""
    lib = _library(library, quiet=True)
    reports = lib.compact(merge_size=merge_size)
    if json_out:
        _print_json(reports)
        return
    for r in reports:
        what = (f"{r['tombstones_dropped']} deleted vectors dropped, {r['bytes_written']:,} bytes written"
                if r["rewritten"] else "nothing to do")
        typer.echo(f"{r['index']}: {r['segments_before']} -> {r['segments_after']} segments, {what}")


@app.command()
@_cli_errors
def doctor(
    library: Optional[Path] = LibraryOpt,
    json_out: bool = JsonOpt,
    device: Optional[str] = DeviceOpt,
    offline: Optional[bool] = OfflineOpt,
) -> None:
    """Check decoders, versions, CUDA, every model role and the library's integrity."""
    report = _library(library, device, offline, quiet=True).doctor()
    if json_out:
        _print_json(report)
    else:
        for c in report["checks"]:
            mark = {"ok": "ok ", "off": "off"}.get(c.get("state", "ok" if c["ok"] else "bad"), "BAD")
            typer.echo(f"[{mark}] {c['name']}: {c['detail']}" + (f"  -> {c['fix']}" if c["fix"] else ""))
    if not report["ok"]:
        raise typer.Exit(1)


@app.command("ls")
@_cli_errors
def ls(library: Optional[Path] = LibraryOpt, json_out: bool = JsonOpt) -> None:
    """List indexed videos with duration, clips and channels."""
    videos = _library(library).videos()
    if json_out:
        _print_json([v.model_dump() for v in videos])
        return
    if not videos:
        typer.echo("the library is empty; add videos with: vdisc index PATH")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for col in ("id", "video", "duration", "clips", "scenes", "channels", "status"):
        table.add_column(col)
    for v in videos:
        table.add_row(str(v.id), v.name, fmt_time(v.duration), str(v.clips), str(v.scenes), ", ".join(v.channels),
                      v.status)
    Console().print(table)


@app.command()
@_cli_errors
def info(
    library: Optional[Path] = LibraryOpt,
    json_out: bool = JsonOpt,
    load: bool = typer.Option(False, "--load", help="Load every model role to check it resolves"),
    device: Optional[str] = DeviceOpt,
    offline: Optional[bool] = OfflineOpt,
    visual_model: Optional[str] = VisualOpt,
    text_model: Optional[str] = TextOpt,
    asr_model: Optional[str] = AsrOpt,
    ocr_model: Optional[str] = OcrOpt,
    caption_model: Optional[str] = CaptionOpt,
) -> None:
    """Show the library path, resolved models, device and decoder backends."""
    lib = _library(library, device, offline, quiet=True, visual=visual_model, text=text_model, asr=asr_model,
                   ocr=ocr_model, caption=caption_model)
    data = lib.info(load_models=load)
    if json_out:
        _print_json(data)
        return
    typer.echo(f"vdisc {data['version']}")
    typer.echo(f"library   {data['library']}" + ("" if data["exists"] else " (empty)"))
    if data.get("counts"):
        c = data["counts"]
        typer.echo(f"          schema {data['schema_version']}, {c['videos']} videos, {c['clips']} clips, "
                   f"{c['frames']} frames, {c['words']} words")
    typer.echo(f"device    {data['device']}")
    for name, why in data["decoders"].items():
        typer.echo(f"decoder   {name}: {'ok' if why is None else why}")
    for role, m in data["models"].items():
        detail = m.get("reason") or (m["spec"]["model_id"] if "spec" in m else m.get("where", ""))
        typer.echo(f"model     {role}: {m['ref']} [{m['state']}] {detail}".rstrip())
    c = data["compressor"]
    typer.echo(f"compressor {c['setting']} [{c['state']}] {c['detail']}")
    for key, v in (data.get("vectors") or {}).items():
        typer.echo(f"vectors   {key}: {v['count']} ({v['model']})")
    for n in data.get("notices") or []:
        typer.echo(f"notice    {n['message']}")


@app.command("export")
@_cli_errors
def export_cmd(
    source: Optional[str] = typer.Argument(None, help="JSON from vdisc ask/search/export --json: a file, or - "
                                           "for stdin"),
    ask_question: Optional[str] = typer.Option(None, "--ask", help="Ask this question and export the answer"),
    search_query: Optional[str] = typer.Option(None, "--search", help="Search for this and export the hits"),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="srt | vtt | chapters | json | edl"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the format here [default: stdout]"),
    clip: Optional[Path] = typer.Option(None, "--clip", help="Cut the moments into one video (.mp4, .mkv, .mov)"),
    video: Optional[str] = typer.Option(None, "--video", help="Only this video's moments (id, path or file name)"),
    top_k: int = typer.Option(10, "--top-k", "-k", help="With --search: how many moments"),
    level: Optional[str] = typer.Option(None, "--level", help="With --search: video | scene | clip | frame "
                                        "(clip keeps a reel from swallowing whole scenes)"),
    max_steps: int = typer.Option(12, "--max-steps", help="With --ask: most tool calls before answering"),
    library: Optional[Path] = LibraryOpt,
    device: Optional[str] = DeviceOpt,
    offline: Optional[bool] = OfflineOpt,
) -> None:
    """Export an answer's or search's moments: subtitles, chapters, EDL, JSON, or one cut clip."""
    from vdisc.errors import ConfigError
    from vdisc.export import write_text_atomic, writer

    if sum(x is not None for x in (source, ask_question, search_query)) != 1:
        raise ConfigError("give one source: a JSON file (- for stdin), --ask QUESTION or --search QUERY")
    if fmt is None and clip is None:
        raise ConfigError("say what to export: --format srt|vtt|chapters|json|edl, --clip OUT.mp4, or both")
    if fmt is None and output is not None:
        raise ConfigError("--output needs --format")
    if fmt is not None:
        writer(fmt)  # a typo in the format is reported before any work is done
    lib = _library(library, device, offline, quiet=ask_question is None)
    if ask_question is not None:
        result: Any = lib.ask(ask_question, video=video, max_steps=max_steps)
    elif search_query is not None:
        result = lib.search(search_query, top_k=top_k, video=video, level=level)
    elif source == "-":
        result = sys.stdin.read()
    else:
        path = Path(source or "")
        if not path.is_file():
            raise ConfigError(f"{source}: no such file")
        result = path.read_text(encoding="utf-8", errors="replace")
    text = lib.export(result, fmt, video=video) if fmt is not None else None  # validates before any cutting
    if clip is not None:
        report = lib.clip(result, clip, video=video)
        typer.echo(f"wrote {report.path}: {report.moments} moment{'s' * (report.moments != 1)}, "
                   f"{fmt_time(report.duration)}, {report.video_codec}/{report.audio_codec or 'no audio'} "
                   f"in {report.seconds:.1f} s", err=True)
    if text is not None:
        if output is None:
            typer.echo(text, nl=False)
        else:
            write_text_atomic(output, text)
            typer.echo(f"wrote {output} ({fmt})", err=True)


@app.command()
@_cli_errors
def serve(
    library: Optional[Path] = LibraryOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; loopback keeps the library "
                             "private to this machine"),
    port: int = typer.Option(8765, "--port", help="Port to listen on; 0 picks a free one"),
    asks: int = typer.Option(2, "--asks", min=1, help="Questions answered at once; more wait in a queue"),
    ask_queue: int = typer.Option(8, "--ask-queue", min=0, help="Questions that may wait for a free slot; "
                                  "one more is refused with a message"),
    device: Optional[str] = DeviceOpt,
    offline: Optional[bool] = OfflineOpt,
) -> None:
    """A local web page: ask and search, see each moment's thumbnail, click to play it."""
    from vdisc.serve import LOOPBACK, run

    lib = _library(library, device, offline)
    notices: set[str] = set()
    warn = lib.notify

    def once(msg: str) -> None:  # the server asks many times; say each notice once
        if msg not in notices and warn is not None:
            notices.add(msg)
            warn(msg)

    lib.notify = once
    if host not in LOOPBACK:
        _err(f"warning: listening on {host}: anyone who can reach this machine can search and play the library")
    run(lib, host, port, on_ready=lambda url: typer.echo(f"vdisc: serving {lib.path} at {url} (Ctrl-C to stop)"),
        asks=asks, ask_queue=ask_queue)


class _ProgressBars:
    """Rich progress bars fed by ``Progress`` events; a no-op when off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bars: Any = None
        self._tasks: dict[tuple[str, str], Any] = {}

    def __enter__(self) -> "_ProgressBars":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bars = Progress(TextColumn("{task.description}"), BarColumn(),
                                  TextColumn("{task.completed:.0f}/{task.total:.0f} s"), TimeRemainingColumn(),
                                  console=Console(stderr=True), transient=False)
            self._bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bars is not None:
            self._bars.stop()

    def update(self, event: Any) -> None:
        if self._bars is None:
            return
        if event.stage == "resume":  # a line, not a bar: that much was done before
            self._bars.console.print(f"{event.video}: resuming at {fmt_time(event.done)} "
                                     f"({100 * event.done / max(event.total, 1e-9):.0f}% done by an interrupted run)")
            return
        key = (event.video, event.stage)
        if key not in self._tasks:
            self._tasks[key] = self._bars.add_task(f"{event.video} · {event.stage}", total=max(event.total, 1e-3))
        self._bars.update(self._tasks[key], completed=event.done)


def main() -> None:
    """The console script. A usage error (an unknown option, a value out of range, a missing argument) is
    one line too, not a box: Typer's click (vendored in new Typer, the real one in old) raises a
    ClickException, told here by what it has rather than by which module it comes from."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        _err("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - only click's own exceptions are turned into a line here
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        ctx = getattr(exc, "ctx", None)
        command = f"{ctx.info_name} " if ctx is not None and ctx.parent is not None else ""
        _err(f"{exc.format_message().splitlines()[0]} (see vdisc {command}--help)")
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
