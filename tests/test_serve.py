"""`vdisc serve` over HTTP: the real server in a subprocess, spoken to with httpx and raw HTTP/1.1."""

from __future__ import annotations

import http.client
import io
import subprocess
import sys
import time
from urllib.parse import quote, urlsplit

import httpx
import numpy as np
import pytest

from conftest import FIXTURES
from served import serving, sse_events as parse_sse
from test_agent_offline import iou
from test_cli import vdisc

TALK = FIXTURES / "talk.mp4"


@pytest.fixture(scope="module")
def server(talk_library, tmp_path_factory):
    """(url, library home): one server for the module; reading tests do not change the library."""
    home, _ = talk_library
    with serving(home, tmp_path_factory.mktemp("serve-logs")) as url:
        yield url, home


@pytest.fixture()
def client(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``path`` exactly as written: no client-side normalisation of ``..`` or %2f."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<video id="player"' in page and 'id="question"' in page and 'id="query"' in page
    assert "http://" not in page and "https://" not in page  # no CDN, nothing external
    assert "default-src 'self'" in r.headers["content-security-policy"]
    videos = client.get("/api/videos").json()
    assert [v["name"] for v in videos["videos"]] == ["talk.mp4"]
    assert "path" not in videos["videos"][0]  # file paths stay on the server


def test_range_requests(client):
    data = TALK.read_bytes()
    n = len(data)
    r = client.get("/video/1")
    assert r.status_code == 200 and r.content == data
    assert r.headers["accept-ranges"] == "bytes" and r.headers["content-type"] == "video/mp4"

    r = client.get("/video/1", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == data[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{n}" and r.headers["content-length"] == "100"

    r = client.get("/video/1", headers={"Range": "bytes=1000-"})  # open-ended, as a browser's first request
    assert r.status_code == 206 and r.content == data[1000:]
    assert r.headers["content-range"] == f"bytes 1000-{n - 1}/{n}"

    r = client.get("/video/1", headers={"Range": "bytes=-500"})  # suffix: the last 500 bytes (the moov atom)
    assert r.status_code == 206 and r.content == data[-500:]
    assert r.headers["content-range"] == f"bytes {n - 500}-{n - 1}/{n}"

    r = client.get("/video/1", headers={"Range": f"bytes={n - 10}-{n + 1000}"})  # end past the file: clipped
    assert r.status_code == 206 and r.content == data[-10:]

    for bad in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}"):
        r = client.get("/video/1", headers={"Range": bad})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{n}", bad
        assert data[:64] not in r.content


@pytest.mark.parametrize("path", [
    "/video/999", "/video/0", "/video/abc", "/video/1.5", "/video/-1", "/video/0x1", "/video/%201",
    "/thumb/999/1000", "/thumb/abc/1000", "/thumb/1/abc", "/thumb/1/-5", "/thumb/1/999999999",
    "/api/search?q=rain&video=999", "/api/search?q=rain&video=talk.mp4",
])
def test_unknown_and_malformed_ids_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code, r.text[:200])


def test_path_traversal_never_reaches_a_file(server):
    url, home = server
    talk = TALK.read_bytes()
    attempts = [
        "/video/..%2f..%2fetc%2fpasswd", "/video/../../etc/passwd", "/video/%2e%2e/%2e%2e/etc/passwd",
        "/video/%2fetc%2fpasswd", "/video//etc/passwd", "/video/" + quote(str(TALK), safe=""),
        "/video/1/../../etc/passwd", "/video/1%00", "/thumb/../../../etc/passwd",
        "/thumb/1/..%2f..%2f..%2fetc%2fpasswd", "/thumb/1/1000%2f..%2f..%2fetc%2fpasswd",
        "/../../../../etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd", "/web/page.html", "/serve.py",
        "/" + quote(str(home / "index.db"), safe=""), "/video/" + quote(str(home / "index.db"), safe=""),
    ]
    for path in attempts:
        status, body = raw_get(url, path)
        assert status in (400, 404, 422), (path, status)
        assert b"root:" not in body and talk[:64] not in body and b"SQLite" not in body, path


def test_only_loopback_host_headers_are_answered(server):
    url, _ = server
    port = urlsplit(url).port
    assert raw_get(url, "/api/videos", {"Host": "evil.example"})[0] == 400  # DNS rebinding
    assert raw_get(url, "/api/videos", {"Host": f"evil.example:{port}"})[0] == 400
    assert raw_get(url, "/api/videos", {"Host": f"localhost:{port}"})[0] == 200
    assert raw_get(url, "/api/videos", {"Host": f"127.0.0.1:{port}"})[0] == 200


def test_thumbnails_are_the_right_frame_and_cached(client, server):
    from PIL import Image

    _, home = server
    r = client.get("/thumb/1/43000")  # 43 s: the green shot (talk.json shots; 41-50 s)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    img = Image.open(io.BytesIO(r.content)).convert("RGB")
    assert max(img.size) <= 160
    red, green, blue = np.asarray(img).reshape(-1, 3).mean(0)
    assert green > 90 and red < 40 and blue < 60, (red, green, blue)
    (cached,) = (home / "thumbs").glob("1-*/43000.jpg")
    assert cached.read_bytes() == r.content
    mtime = cached.stat().st_mtime_ns
    assert client.get("/thumb/1/43000").content == r.content and cached.stat().st_mtime_ns == mtime


def test_search_api_renders_rows_the_page_can_play(client):
    r = client.get("/api/search", params={"q": "heavy rain", "top_k": 3})
    assert r.status_code == 200
    data = r.json()
    hits = data["result"]["hits"]
    assert hits and "umbrella" in hits[0]["snippet"].lower()
    html = data["html"]
    assert html.count('class="vdisc-moment"') == len(hits)
    assert 'data-video-id="1" tabindex="0"' in html and f'data-start="{hits[0]["start"]:.3f}"' in html
    assert "/thumb/1/" in html and "data:image" not in html  # the page fetches thumbnails; notebooks inline them
    r = client.get("/api/search", params={"q": "  "})
    assert r.status_code == 400 and r.json() == {"error": "the search query is empty"}
    assert client.get("/api/search", params={"q": "rain", "video": "1"}).status_code == 200


def sse_events(client: httpx.Client, question: str) -> list[tuple[float, str, dict]]:
    """(arrival time, event, data) of each server-sent event of /api/ask."""
    with client.stream("GET", "/api/ask", params={"q": question}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        return [(time.monotonic(), name, data) for name, data in parse_sse(r.iter_lines())]


def test_ask_streams_the_trace_then_the_answer(client, talk_truth):
    events = sse_events(client, "When is a downpour forecast?")
    names = [e[1] for e in events]
    assert names[0] == "tool" and names[-1] == "answer" and names.count("answer") == 1, names
    assert names.count("tool") == names.count("observation") >= 2
    assert events[0][2]["tool"] == "search" and "query" in events[0][2]["args"]
    # streamed, not buffered: the answer comes about as long after the first call as the tools took
    work = sum(e[2]["seconds"] for e in events if e[1] == "observation")
    assert work > 0.1 and events[-1][0] - events[0][0] >= 0.5 * work, (work, events[-1][0] - events[0][0])
    answer = events[-1][2]["answer"]
    truth = next(x for x in talk_truth["speech"] if "umbrella" in x["text"])
    top = answer["spans"][0]
    assert top["video"] == "talk.mp4" and iou((top["start"], top["end"]), (truth["start"], truth["end"])) >= 0.5
    assert 'data-video-id="1"' in events[-1][2]["html"]
    assert answer["answer"].startswith("0:00:4") and answer["explanation"].startswith("At ")  # short, then why
    assert "vdisc-answer-explanation" in events[-1][2]["html"]


def test_ask_failure_is_one_event(client):
    events = sse_events(client, " ")
    assert [e[1] for e in events] == ["fail"] and events[0][2]["message"] == "the question is empty"


def test_serve_errors_are_one_line(tmp_path, server):
    r = vdisc("serve", "--library", str(tmp_path / "empty"), "--port", "0")
    assert r.returncode != 0 and "no library" in r.stderr and "Traceback" not in r.stderr
    url, home = server
    r = vdisc("serve", "--library", str(home), "--port", str(urlsplit(url).port))  # taken by the module's server
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode != 0 and len(lines) == 1 and "cannot listen" in lines[0], r.stderr


def test_serve_without_fastapi_names_the_extra(talk_library):
    home, _ = talk_library
    code = ("import sys; sys.modules['fastapi'] = None\n"  # as if not installed: importing it raises ImportError
            "from vdisc.cli import main\n"
            f"sys.argv = ['vdisc', 'serve', '--library', {str(home)!r}, '--port', '0']\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and r.stderr.strip() == "vdisc: vdisc serve needs fastapi: pip install 'vdisc[serve]'"


def test_importing_vdisc_loads_no_web_stack():
    code = ("import sys\nimport vdisc, vdisc.cli, vdisc.export\n"
            "print([m for m in ('fastapi', 'uvicorn', 'starlette', 'av', 'torch') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
