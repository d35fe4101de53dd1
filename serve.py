"""`vdisc serve`: a local web page over a library — ask, search, see each moment, click to play it.

``create_app(library)`` builds the FastAPI app; ``server`` wraps it in a uvicorn
server on a listening socket, and ``run`` serves that until interrupted.

- ``GET /`` the page (``web/page.html``: no external assets).
- ``GET /api/videos``, ``GET /api/search?q=`` JSON; search returns the hits and
  their HTML from the shared renderer (``web/render.py``, as notebooks use).
- ``GET /api/ask?q=`` server-sent events: ``queued`` (``position`` in line, 1 =
  next) when it must wait for a free slot, ``tool`` and ``observation`` as the agent
  runs, then ``answer`` (the ``vdisc ask --json`` dict and its HTML) or ``fail``
  (one line). ``fail``, not ``error``: a browser's EventSource uses ``error``
  for dropped connections.
- ``GET /video/{id}`` the file, with HTTP range requests (Starlette's
  ``FileResponse``: 206, multi-range, 416 for ranges past the end).
- ``GET /thumb/{id}/{ms}`` a JPEG of the frame at ``ms`` milliseconds, decoded on
  first request and cached under ``<library>/thumbs/``.

Searches and asks run at once, and a search never waits for an ask: searches
run in the server's thread pool, each ask on a worker thread of its own, and
the models, SQLite reads and FAISS indexes they share are safe to use from many
threads (a model loads once, for whoever needs it first). Asks are bounded: at
most ``asks`` (default 2) run at once, each its own conversation; more wait in
line, in arrival order, seeing ``queued`` until their turn. An ask whose page
went away while it waited is dropped, and one already running stops at its next
step (a tool call already made finishes; the conversation keeps what was done). When
``ask_queue`` asks (default 8) are waiting, a new one is refused at once with
one ``fail`` line, not left waiting with no end in sight; it is a ``fail``
event, not an HTTP 503, because a browser's EventSource cannot read the body
of an error response and would only say the connection was lost.

Only videos in the library can be served: a client names an id, the path
comes from the library's database, and anything that is not a known id is a
404. The server binds loopback by default and, while it does, answers only
requests whose Host header names this machine (so a web page elsewhere cannot
reach it through DNS rebinding).
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import os
import queue
import re
import socket
import threading
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from vdisc.errors import ConfigError, VdiscError
from vdisc.index.files import atomic_write

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from vdisc import Library

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
KEEPALIVE = 15.0  # s between SSE comments while the agent works, so proxies and browsers keep the stream open
ASKS = 2  # asks answered at once: each is an agent loop (CPU for the tools, and a chat model's time with one)
ASK_QUEUE = 8  # asks that may wait for a free slot; one more is refused with one line
THUMB_SLACK = 1.0  # s past a video's end a thumbnail may still be asked for (rounding of the last moment)
_ID = re.compile(r"[0-9]{1,12}")  # what a video id or a millisecond looks like in a URL; anything else is a 404


def _require_fastapi() -> None:
    import importlib

    for name in ("fastapi", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(f"vdisc serve needs {name}: pip install 'vdisc[serve]'") from None


def create_app(library: "Library", *, asks: int = ASKS, ask_queue: int = ASK_QUEUE) -> "FastAPI":
    """The FastAPI app of ``vdisc serve`` over ``library`` (which must hold an index).

    At most ``asks`` asks run at once; up to ``ask_queue`` more wait in line, in
    arrival order; past that an ask is refused at once with one ``fail`` line.
    Searches never wait for asks (the module's docstring says how).
    """
    _require_fastapi()
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
    from sqlalchemy import select
    from starlette.concurrency import run_in_threadpool

    from vdisc.index.store import Video
    from vdisc.web import page
    from vdisc.web.render import Media, answer_html, search_html, thumbnail_jpeg

    if asks < 1 or ask_queue < 0:
        raise ConfigError(f"asks must be at least 1 and ask_queue at least 0, not {asks} and {ask_queue}")
    store = library._existing_store()  # a LibraryError (one line at the CLI) when nothing was indexed here
    library.registry  # made now, once: requests in many threads share it and each model it loads
    line = _AskLine(asks, ask_queue)
    app = FastAPI(title="vdisc", docs_url=None, redoc_url=None, openapi_url=None)

    def video_row(video_id: str) -> Video:
        if not _ID.fullmatch(video_id):
            raise HTTPException(404, "no such video")
        with store.session() as s:
            v = s.get(Video, int(video_id))
            if v is None:
                raise HTTPException(404, "no such video")
            s.expunge(v)
            return v

    def media() -> Media:
        with store.session() as s:
            return Media.served(dict(s.execute(select(Video.name, Video.id)).all()))

    @app.exception_handler(VdiscError)
    def vdisc_error(_request: Any, exc: VdiscError) -> JSONResponse:
        return JSONResponse({"error": _line(exc)}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page(), headers={"Cache-Control": "no-cache"})

    @app.get("/api/videos")
    def videos() -> dict[str, Any]:
        return {"library": str(library.path),
                "videos": [v.model_dump(exclude={"path"}) for v in library.videos()]}

    @app.get("/api/search")
    def search(q: str, video: str | None = None, top_k: int = 10) -> dict[str, Any]:
        ref = video_row(video).id if video else None
        result = library.search(q, top_k=min(max(top_k, 1), 100), video=ref)
        return {"result": result.to_dict(), "html": search_html(result, media())}

    @app.get("/api/ask")
    async def ask(q: str, video: str | None = None, max_steps: int = 12,
                  conversation: str | None = None) -> StreamingResponse:
        ref = (await run_in_threadpool(video_row, video)).id if video else None
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        gone = threading.Event()  # set when the page stops listening

        def put(item: dict[str, Any] | None) -> None:  # from the ask's thread
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the server stopped: no one is listening
                gone.set()

        def step(item: dict[str, Any]) -> None:  # each tool step of the running ask
            if gone.is_set():
                raise _PageGone  # ends the agent loop at this step: no one will read its answer
            put(item)

        def work() -> None:
            if gone.is_set():
                return  # its page went away while it waited in line
            try:
                answer = library.ask(q, video=ref, max_steps=min(max(max_steps, 1), 50), on_event=step,
                                     conversation=conversation or None)
                put({"event": "answer", "answer": answer.to_dict(), "html": answer_html(answer, media())})
            except _PageGone:
                log.info("ask %r stopped: its page went away", q)
            except VdiscError as exc:
                put({"event": "fail", "message": _line(exc)})
            except Exception as exc:  # noqa: BLE001 - the page gets one line, the terminal the traceback
                log.exception("ask %r failed", q)
                put({"event": "fail", "message": f"internal error: {type(exc).__name__}: {_line(exc)}"})
            finally:
                put(None)

        position = line.submit(work)
        if position is None:
            events.put_nowait({"event": "fail", "message": f"too many questions at once ({asks} being answered, "
                                                           f"{ask_queue} waiting); ask again in a moment"})
            events.put_nowait(None)
        elif position:
            events.put_nowait({"event": "queued", "position": position})
        return StreamingResponse(_sse(events, gone), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/video/{video_id}")
    def video(video_id: str) -> FileResponse:
        v = video_row(video_id)
        try:
            st = os.stat(v.path)
        except OSError:
            raise HTTPException(404, "the video file is gone (moved or deleted since it was indexed)") from None
        kind = mimetypes.guess_type(v.path)[0] or "application/octet-stream"
        return FileResponse(v.path, media_type=kind, stat_result=st)

    @app.get("/thumb/{video_id}/{ms}")
    def thumb(video_id: str, ms: str) -> FileResponse:
        v = video_row(video_id)
        if not _ID.fullmatch(ms) or int(ms) > (v.duration + THUMB_SLACK) * 1000:
            raise HTTPException(404, "no such frame")
        # keyed by fingerprint too: a removed video's id can be reused by another file
        path = library.path / "thumbs" / f"{v.id}-{v.fingerprint[:16]}" / f"{int(ms)}.jpg"
        if not path.is_file():
            jpeg = thumbnail_jpeg(v.path, int(ms) / 1000)
            if jpeg is None:
                raise HTTPException(404, "no picture at that time")
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, jpeg, durable=False)  # a cache: rebuilt if lost
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    @app.middleware("http")
    async def headers(request: Any, call_next: Callable[[Any], Any]) -> Any:
        response = await call_next(request)
        # the page loads nothing from elsewhere; say so, so a browser enforces it
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                    "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app


class _PageGone(Exception):
    """Raised into a running ask whose page stopped listening, so it stops at its next step."""


def _line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


async def _sse(events: "asyncio.Queue[dict[str, Any] | None]", gone: threading.Event) -> AsyncIterator[str]:
    """Server-sent events from a queue until None: ``event: <name>`` and one line of JSON each.

    Awaits on the event loop, so a stream holds no thread while its ask works or waits; ``gone`` is set
    when the stream ends, the page having gone away or not.
    """
    try:
        yield ": vdisc\n\n"  # sends the headers now, so the page knows the question was taken
        while True:
            try:
                item = await asyncio.wait_for(events.get(), KEEPALIVE)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is None:
                return
            yield f"event: {item['event']}\ndata: {json.dumps(item, ensure_ascii=False, default=str)}\n\n"
    finally:
        gone.set()


class _AskLine:
    """Runs asks on ``slots`` worker threads, the rest in arrival order, at most ``waiting`` of them in line.

    The workers are daemon threads, as the ask threads were before: stopping the server does not wait for
    an agent loop to finish.
    """

    def __init__(self, slots: int, waiting: int) -> None:
        self.slots, self.waiting = slots, waiting
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._taken = 0  # asks running or in line
        self._workers: list[threading.Thread] = []

    def submit(self, job: Callable[[], None]) -> int | None:
        """Queue ``job``: its place in line (1 = next; 0: it runs now), or None when the line is full."""
        with self._lock:
            if self._taken >= self.slots + self.waiting:
                return None
            position = max(0, self._taken - self.slots + 1)
            self._taken += 1
            if len(self._workers) < min(self.slots, self._taken):  # started as needed, kept afterwards
                worker = threading.Thread(target=self._work, name=f"vdisc-ask-{len(self._workers) + 1}", daemon=True)
                self._workers.append(worker)
                worker.start()
        self._jobs.put(job)
        return position

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # noqa: BLE001 - a job reports its own errors; this keeps the worker alive
                log.exception("an ask's worker caught an error")
            finally:
                with self._lock:
                    self._taken -= 1


class _HostGuard:
    """ASGI middleware: only Host headers naming loopback (DNS-rebinding guard for a loopback server)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            m = re.fullmatch(r"\[?([^\[\]]+?)\]?(:\d+)?", host.strip().lower())
            if m is None or m.group(1) not in LOOPBACK:
                from starlette.responses import PlainTextResponse

                await PlainTextResponse("vdisc serve answers only requests for localhost", status_code=400)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (``port`` 0 picks a free one), or ConfigError in one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; try another --port") from None
    except (OverflowError, ValueError):
        sock.close()
        raise ConfigError(f"--port must be 0-65535, not {port}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def server(library: "Library", host: str = "127.0.0.1", port: int = 8765, *,
           asks: int = ASKS, ask_queue: int = ASK_QUEUE) -> "tuple[uvicorn.Server, socket.socket]":
    """The uvicorn server of ``vdisc serve`` and the socket it will serve, already listening (``port`` 0 picks
    a free one); ``server.run(sockets=[sock])`` serves until ``server.should_exit``. ``run`` is this plus that."""
    _require_fastapi()
    import uvicorn

    app: Any = create_app(library, asks=asks, ask_queue=ask_queue)
    if host in LOOPBACK:
        app = _HostGuard(app)
    sock = bind(host, port)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3, lifespan="off")
    return uvicorn.Server(config), sock


def run(library: "Library", host: str = "127.0.0.1", port: int = 8765,
        on_ready: Callable[[str], None] | None = None, *, asks: int = ASKS, ask_queue: int = ASK_QUEUE) -> None:
    """Serve ``library`` until interrupted; ``on_ready`` gets the URL once the port is open. At most ``asks``
    asks run at once and ``ask_queue`` more wait in line (``create_app``); searches never wait for them."""
    srv, sock = server(library, host, port, asks=asks, ask_queue=ask_queue)
    if on_ready is not None:
        on_ready(url_of(sock))  # the socket already listens: connections wait for uvicorn, none are refused
    srv.run(sockets=[sock])
