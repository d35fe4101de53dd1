"""browse pages through a large library instead of showing the first few videos and hiding the rest."""

from __future__ import annotations

import json

from vdisc import Library
from vdisc.index.store import Store

from longlib import new_video
from test_cli import vdisc


def _library(tmp_path, n: int) -> Library:
    store = Store(tmp_path / "lib")
    for i in range(n):
        new_video(store, f"v{i:02d}.mp4", status="done")
    return Library(tmp_path / "lib")


def test_pages_cover_every_video_once(tmp_path):
    lib = _library(tmp_path, 23)
    seen, page = [], 1
    while True:
        view = lib.browse(per_page=5, page=page, max_scenes=2)
        assert view.total_videos == 23 and view.pages == 5 and view.page == page
        seen += [v.video for v in view.videos]
        if page == view.pages:
            break
        page += 1
    assert seen == [f"v{i:02d}.mp4" for i in range(23)]
    assert lib.browse(per_page=5, page=9).videos == []  # past the end: empty, not an error


def test_cli_says_where_the_next_page_is(tmp_path):
    _library(tmp_path, 7)
    r = vdisc("browse", "--library", str(tmp_path / "lib"), "--per-page", "3", "--page", "2")
    assert r.returncode == 0, r.stderr
    assert [ln.split(" ")[0] for ln in r.stdout.splitlines() if ln.startswith("v")] == ["v03.mp4", "v04.mp4",
                                                                                          "v05.mp4"]
    assert "(page 2 of 3, 7 videos; --page 3 for the next)" in r.stdout
    data = json.loads(vdisc("browse", "--library", str(tmp_path / "lib"), "--per-page", "3", "--page", "3",
                            "--json").stdout)
    assert data["page"] == 3 and data["pages"] == 3 and [v["video"] for v in data["videos"]] == ["v06.mp4"]
