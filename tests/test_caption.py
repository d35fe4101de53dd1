"""Tests for vdisc.index.models.caption: a tiny offline VLM and a real local HTTP server."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Set before transformers / huggingface_hub are imported: they read it at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import pytest
from PIL import Image

from vdisc.errors import ModelUnavailable
from vdisc.index.models.caption import (
    DEFAULT_PROMPT,
    Captioner,
    _pick_frames,
    load_hf_captioner,
    load_openai_captioner,
)

try:  # tests/ as a package or as a rootdir on sys.path (pytest's default "prepend" mode)
    from .tiny_vlm import build_tiny_vlm
except ImportError:
    from tiny_vlm import build_tiny_vlm

ENV_VARS = ("VDISC_CAPTION_BASE_URL", "OPENAI_BASE_URL", "VDISC_CAPTION_API_KEY", "OPENAI_API_KEY")


@pytest.fixture(autouse=True)
def _no_caption_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _frame(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _clips() -> list[list[Image.Image]]:
    return [
        [_frame(480, 270, 1), _frame(480, 270, 2)],
        [_frame(320, 240, 3), _frame(320, 240, 4), _frame(320, 240, 5)],
        [_frame(64, 128, 6), _frame(200, 100, 7)],
    ]


# --------------------------------------------------------------------------- #
# Hugging Face backend on a tiny randomly initialised Llava
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


def test_hf_captioner_batches_and_is_deterministic(tiny_dir):
    captioner = load_hf_captioner(str(tiny_dir), batch_size=2, max_new_tokens=8)
    assert isinstance(captioner, Captioner)
    assert captioner.ref == f"hf:{tiny_dir}"

    batch_sizes: list[int] = []
    generate = captioner.model.generate

    def spy(**kwargs):
        batch_sizes.append(kwargs["input_ids"].shape[0])
        assert kwargs["do_sample"] is False
        return generate(**kwargs)

    captioner.model.generate = spy
    clips = _clips()
    first = captioner.caption(clips)
    assert batch_sizes == [2, 1]
    assert isinstance(first, list) and len(first) == 3
    assert all(isinstance(c, str) and c == c.strip() for c in first)
    assert captioner.caption(clips) == first
    # The caller's frames are untouched (sizes differ, still RGB PIL images).
    assert clips[0][0].size == (480, 270)

    # Left padding: a clip captioned inside a padded batch reads as when alone.
    alone = load_hf_captioner(str(tiny_dir), batch_size=1, max_new_tokens=8)
    assert alone.caption(clips) == first


def test_hf_captioner_edge_cases(tiny_dir, tmp_path):
    captioner = load_hf_captioner(str(tiny_dir), batch_size=4, max_new_tokens=4)
    assert captioner.caption([]) == []
    out = captioner.caption([[], [_frame(100, 60, 9)]], prompt="What is shown?")
    assert out[0] == "" and isinstance(out[1], str) and len(out) == 2

    # Without a chat template the plain "<image>...\nprompt" fallback is used.
    bare = tmp_path / "bare"
    shutil.copytree(tiny_dir, bare)
    (bare / "chat_template.jinja").unlink()
    plain = load_hf_captioner(str(bare), max_new_tokens=4)
    assert plain.processor.chat_template is None
    assert plain._render(2, "hi") == "<image><image>\nhi\n"
    assert len(plain.caption(_clips()[:2])) == 2


@pytest.mark.parametrize("kind", ["missing", "empty", "hub"])
def test_hf_captioner_unloadable_model(kind, tmp_path):
    model = {
        "missing": str(tmp_path / "no-such-model"),
        "empty": str(tmp_path),
        "hub": "vdisc-tests/no-such-model",  # offline: never in the cache
    }[kind]
    with pytest.raises(ModelUnavailable) as info:
        load_hf_captioner(model)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    assert f"hf:{model}" in message


def test_default_prompt_is_short_and_factual():
    assert 0 < len(DEFAULT_PROMPT) < 300
    for word in ("frames", "clip", "sentences", "text"):
        assert word in DEFAULT_PROMPT


# --------------------------------------------------------------------------- #
# OpenAI-compatible backend against a real HTTP server on 127.0.0.1
# --------------------------------------------------------------------------- #


class _Server:
    """A one-endpoint HTTP server in a thread that records what it was sent."""

    def __init__(self, status: int = 200, reply: dict | None = None) -> None:
        self.status = status
        self.reply = reply
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                data = json.dumps(outer.reply).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _completion(text: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "test-vlm",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@pytest.fixture
def server():
    servers: list[_Server] = []

    def start(status: int = 200, reply: dict | None = None) -> _Server:
        srv = _Server(status, reply if reply is not None else _completion("A caption."))
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()


def test_openai_captioner_request_and_reply(server):
    srv = server(reply=_completion("  A man walks a dog past a shop sign reading OPEN.\n"))
    captioner = load_openai_captioner("test-vlm", base_url=srv.base_url, api_key="test-key", max_frames=4)
    assert isinstance(captioner, Captioner)
    assert captioner.ref == "openai:test-vlm"
    assert "test-key" not in repr(captioner)

    clips = [[_frame(1280, 720, i) for i in range(6)], [_frame(300, 200, 10)]]
    captions = captioner.caption(clips, prompt="Describe.")
    assert captions == ["A man walks a dog past a shop sign reading OPEN."] * 2
    assert len(srv.requests) == 2  # one request per clip

    for request, n_frames in zip(srv.requests, (4, 1)):
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["Authorization"] == "Bearer test-key"
        assert request["json"]["model"] == "test-vlm"
        (message,) = request["json"]["messages"]
        assert message["role"] == "user"
        texts = [p["text"] for p in message["content"] if p["type"] == "text"]
        urls = [p["image_url"]["url"] for p in message["content"] if p["type"] == "image_url"]
        assert texts == ["Describe."]
        assert len(urls) == n_frames
        for url in urls:
            assert url.startswith("data:image/jpeg;base64,")
            image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
            assert image.format == "JPEG" and max(image.size) <= 512
    first_sizes = {
        Image.open(io.BytesIO(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]))).size
        for p in srv.requests[0]["json"]["messages"][0]["content"]
        if p["type"] == "image_url"
    }
    assert first_sizes == {(512, 288)}


def test_openai_captioner_settings_from_env(server, monkeypatch):
    srv = server()
    monkeypatch.setenv("VDISC_CAPTION_BASE_URL", srv.base_url + "/")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/wrong")
    monkeypatch.setenv("VDISC_CAPTION_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key")
    captioner = load_openai_captioner("test-vlm")
    assert captioner.caption([[_frame(64, 64, 1)]]) == ["A caption."]
    assert srv.requests[0]["path"] == "/v1/chat/completions"
    assert srv.requests[0]["headers"]["Authorization"] == "Bearer env-key"


def test_openai_captioner_http_error(server):
    error = {"error": {"message": "boom: bad key secret-key-123\nretry", "type": "server"}}
    srv = server(status=500, reply=error)
    captioner = load_openai_captioner("test-vlm", base_url=srv.base_url, api_key="secret-key-123")
    with pytest.raises(ModelUnavailable) as info:
        captioner.caption([[_frame(64, 64, 1)]])
    message = str(info.value)
    assert "500" in message
    assert srv.base_url + "/chat/completions" in message
    assert "secret-key-123" not in message
    assert "\n" not in message


def test_openai_captioner_unreachable():
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    captioner = load_openai_captioner(
        "test-vlm", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout=5
    )
    with pytest.raises(ModelUnavailable) as info:
        captioner.caption([[_frame(64, 64, 1)]])
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "\n" not in message


def test_openai_captioner_needs_key_for_openai():
    with pytest.raises(ModelUnavailable, match="OPENAI_API_KEY"):
        load_openai_captioner("gpt-4o-mini")


def test_pick_frames_spreads_over_the_clip():
    frames = list(range(10))
    assert _pick_frames(frames, 4) == [0, 3, 6, 9]
    assert _pick_frames(frames, 1) == [5]
    assert _pick_frames(frames[:3], 4) == [0, 1, 2]
