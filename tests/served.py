"""Run the real `vdisc serve` for a test: in a subprocess (``serving``: the CLI, which picks a free port and
prints its URL), or in a thread of the test's process (``serving_in_thread``: the same server over a ``Library``
the test holds, so the test can shape it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

START_TIMEOUT = 120.0  # s: a cold start imports the library's stack on a 2-core machine


@contextmanager
def serving(library: Path, logs: Path) -> Iterator[str]:
    """``vdisc serve --port 0`` on ``library``; yields its URL once it answers, stops it afterwards."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / "serve.stdout", logs / "serve.stderr"
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "vdisc.cli", "serve", "--library", str(library), "--port", "0"],
                                stdout=fo, stderr=fe, env=dict(os.environ))
    try:
        url = _wait_for_url(proc, out, err)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_url(proc: subprocess.Popen, out: Path, err: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vdisc serve exited with {proc.returncode}: {err.read_text()[-2000:]}")
        if url is None:
            m = re.search(r"at (http://\S+/) ", out.read_text())
            url = m.group(1) if m else None
        if url is not None:
            try:
                with urllib.request.urlopen(url + "api/videos", timeout=5) as r:
                    if r.status == 200:
                        return url
            except OSError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"vdisc serve did not answer in {START_TIMEOUT:.0f} s: {err.read_text()[-2000:]}")


@contextmanager
def serving_in_thread(library: Any, **options: Any) -> Iterator[str]:
    """``vdisc.serve.server`` over ``library`` on 127.0.0.1, a free port, in a daemon thread; yields its URL.

    ``options`` go to the server (``asks``, ``ask_queue``); it is stopped afterwards.
    """
    from vdisc.serve import server, url_of

    srv, sock = server(library, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, name="vdisc-serve-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not srv.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("vdisc serve did not start in its thread")
            time.sleep(0.02)
        yield url_of(sock)
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
        sock.close()


def sse_events(lines: Any) -> Iterator[tuple[str, Any]]:
    """(event, data) of each server-sent event in an iterable of lines (``httpx``'s ``iter_lines``)."""
    name, data = None, []
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
        elif not line and name is not None:
            yield name, json.loads("\n".join(data))
            name, data = None, []
