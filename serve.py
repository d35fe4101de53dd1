"""`vdisc serve`: a local web page over a library — ask, search, see each moment, click to play it.

``create_app(library)`` builds the FastAPI app; ``run`` serves it with uvicorn.

- ``GET /`` the page (``web/page.html``: no external assets).
- ``GET /api/videos``, ``GET /api/search?q=`` JSON; search returns the hits and
  their HTML from the shared renderer (``web/render.py``, as notebooks use).
- ``GET /api/ask?q=`` server-sent events: ``tool`` and ``observation`` as the
  agent runs, then ``answer`` (the ``vdisc ask --json`` dict and its HTML) or
  ``fail`` (one line). ``fail``, not ``error``: a browser's EventSource uses
  ``error`` for dropped connections.
- ``GET /video/{id}`` the file, with HTTP range requests (Starlette's
  ``FileResponse``: 206, multi-range, 416 for ranges past the end).
- ``GET /thumb/{id}/{ms}`` a JPEG of the frame at ``ms`` milliseconds, decoded on
  first request and cached under ``<library>/thumbs/``.

Only videos in the library can be served: a client names an id, the path
comes from the library's database, and anything that is not a known id is a
404. The server binds loopback by default and, while it does, answers only
requests whose Host header names this machine (so a web page elsewhere cannot
reach it through DNS rebinding).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import queue
import re
import socket
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator

from vdisc.errors import ConfigError, VdiscError
from vdisc.index.files import atomic_write

if TYPE_CHECKING:
    from fastapi import FastAPI

    from vdisc import Library

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
KEEPALIVE = 15.0  # s between SSE comments while the agent works, so proxies and browsers keep the stream open
THUMB_SLACK = 1.0  # s past a video's end a thumbnail may still be asked for (rounding of the last moment)
_ID = re.compile(r"[0-9]{1,12}")  # what a video id or a millisecond looks like in a URL; anything else is a 404


def _require_fastapi() -> None:
    import importlib

    for name in ("fastapi", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(f"vdisc serve needs {name}: pip install 'vdisc[serve]'") from None


def create_app(library: "Library") -> "FastAPI":
    """The FastAPI app of ``vdisc serve`` over ``library`` (which must hold an index)."""
    _require_fastapi()
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
    from sqlalchemy import select

    from vdisc.index.store import Video
    from vdisc.web import page
    from vdisc.web.render import Media, answer_html, search_html, thumbnail_jpeg

    store = library._existing_store()  # a LibraryError (one line at the CLI) when nothing was indexed here
    # the agent and search share lazily loaded models; one request at a time uses them
    busy = threading.Lock()
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
        with busy:
            result = library.search(q, top_k=min(max(top_k, 1), 100), video=ref)
        return {"result": result.to_dict(), "html": search_html(result, media())}

    @app.get("/api/ask")
    def ask(q: str, video: str | None = None, max_steps: int = 12) -> StreamingResponse:
        ref = video_row(video).id if video else None
        events: queue.Queue[dict[str, Any] | None] = queue.Queue()

        def work() -> None:
            try:
                with busy:
                    answer = library.ask(q, video=ref, max_steps=min(max(max_steps, 1), 50), on_event=events.put)
                events.put({"event": "answer", "answer": answer.to_dict(), "html": answer_html(answer, media())})
            except VdiscError as exc:
                events.put({"event": "fail", "message": _line(exc)})
            except Exception as exc:  # noqa: BLE001 - the page gets one line, the terminal the traceback
                log.exception("ask %r failed", q)
                events.put({"event": "fail", "message": f"internal error: {type(exc).__name__}: {_line(exc)}"})
            finally:
                events.put(None)

        # the agent runs in its own thread, so its events reach the page while it works
        threading.Thread(target=work, name="vdisc-ask", daemon=True).start()
        return StreamingResponse(_sse(events), media_type="text/event-stream",
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


def _line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _sse(events: "queue.Queue[dict[str, Any] | None]") -> Iterator[str]:
    """Server-sent events from a queue until None: ``event: <name>`` and one line of JSON each."""
    yield ": vdisc\n\n"  # sends the headers now, so the page knows the question was taken
    while True:
        try:
            item = events.get(timeout=KEEPALIVE)
        except queue.Empty:
            yield ": keep-alive\n\n"
            continue
        if item is None:
            return
        yield f"event: {item['event']}\ndata: {json.dumps(item, ensure_ascii=False, default=str)}\n\n"


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


def run(library: "Library", host: str = "127.0.0.1", port: int = 8765,
        on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``library`` until interrupted; ``on_ready`` gets the URL once the port is open."""
    _require_fastapi()
    import uvicorn

    app: Any = create_app(library)
    if host in LOOPBACK:
        app = _HostGuard(app)
    sock = bind(host, port)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3, lifespan="off")
    if on_ready is not None:
        on_ready(url_of(sock))  # the socket already listens: connections wait for uvicorn, none are refused
    uvicorn.Server(config).run(sockets=[sock])
