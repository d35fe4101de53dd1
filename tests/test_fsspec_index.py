"""Videos named by URL and read through fsspec (index/remote.py): fsspec's in-memory filesystem and
file:// URLs, indexed without Ray (the Ray run is in test_ray_index.py)."""

from __future__ import annotations

import dataclasses
import sqlite3
import sys

import pytest

pytest.importorskip("fsspec")

import fsspec  # noqa: E402

from vdisc import Library  # noqa: E402
from vdisc.errors import ConfigError  # noqa: E402
from vdisc.index import decode, remote  # noqa: E402
from vdisc.index.pipeline import expand_paths, file_fingerprint  # noqa: E402

from conftest import FIXTURES  # noqa: E402

SILENT = FIXTURES / "silent.mp4"


@pytest.fixture
def memfs():
    fs = fsspec.filesystem("memory")
    fs.pipe("/vdisc-test/a/silent.mp4", SILENT.read_bytes())
    fs.pipe("/vdisc-test/a/notes.txt", b"not a video")
    fs.pipe("/vdisc-test/broken.mp4", b"\x00" * 4096)
    yield fs
    fs.rm("/vdisc-test", recursive=True)


def test_a_url_reads_like_its_file(memfs, tmp_path):
    url = remote.RemoteFile("memory://vdisc-test/a/silent.mp4")
    assert str(url) == "memory:///vdisc-test/a/silent.mp4"  # one spelling per file
    assert url.name == "silent.mp4" and url.exists() and url.stat().st_size == SILENT.stat().st_size
    assert file_fingerprint(url) == file_fingerprint(SILENT)
    assert dataclasses.replace(remote.probe(url), path="") == dataclasses.replace(decode.probe(SILENT), path="")
    with remote.local_copy(url) as local:
        assert local.read_bytes() == SILENT.read_bytes()
    assert not local.exists()  # the copy is gone once perceived
    # a prefix is walked for videos; local paths pass through
    assert expand_paths(["memory://vdisc-test/a/", SILENT]) == [url, SILENT.resolve()]
    assert [remote.is_url(x) for x in ("s3://b/x.mp4", "file:///x.mp4", "C:\\x.mp4", "/a/b.mp4")] == [
        True, True, False, False]


def test_without_fsspec_a_url_is_one_clear_line(monkeypatch, tmp_path, test_models):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(ConfigError, match=r"needs fsspec, which is not installed: pip install 'vdisc\[ray\]'"):
        Library(tmp_path / "lib", device="cpu", models=test_models).index("s3://bucket/talk.mp4")


def test_an_unknown_protocol_is_one_clear_line():
    with pytest.raises(ConfigError, match="no-such-proto"):
        remote.RemoteFile("no-such-proto://bucket/x.mp4")


def test_indexing_a_url_keeps_the_url_and_matches_the_local_file(memfs, tmp_path, test_models):
    url = "memory:///vdisc-test/a/silent.mp4"
    local = Library(tmp_path / "local", device="cpu", models=test_models).index(SILENT)
    lib = Library(tmp_path / "url", device="cpu", models=test_models)
    reports = lib.index(url, "memory:///vdisc-test/broken.mp4", "memory:///vdisc-test/missing.mp4")
    assert [r.status for r in reports] == ["indexed", "failed", "failed"], [r.reason for r in reports]
    assert reports[0].path == url and reports[0].clips == local[0].clips
    assert "broken.mp4" in reports[1].reason and "no such file" in reports[2].reason

    def rows(home):
        with sqlite3.connect(home / "library.db") as conn:
            videos = conn.execute("SELECT path, name, size, fingerprint, duration FROM videos").fetchall()
            clips = conn.execute("SELECT idx, round(start, 4), round(end, 4), shot FROM clips ORDER BY idx").fetchall()
        return videos, clips

    (v_url, c_url), (v_local, c_local) = rows(tmp_path / "url"), rows(tmp_path / "local")
    assert v_url[0][0] == url and v_url[0][1:] == v_local[0][1:] and c_url == c_local
    hit = lib.search("a test pattern", top_k=1).hits[0]
    assert hit.video == "silent.mp4"
    # the URL is the identity: unchanged the second time, without reading the video again
    assert [r.status for r in lib.index(url)] == ["unchanged"]


def test_an_error_decoding_the_temporary_copy_names_the_url(memfs):
    url = remote.RemoteFile("memory://vdisc-test/a/silent.mp4")
    with pytest.raises(decode.DecodeError) as err:
        with remote.local_copy(url) as local:
            raise decode.DecodeError(f"{local}: no frames could be decoded")
    assert str(err.value) == "memory:///vdisc-test/a/silent.mp4: no frames could be decoded"
    assert not local.exists()  # and the copy is gone
