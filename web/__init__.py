"""The page ``vdisc serve`` shows: one HTML file with its CSS and JS inline (package data, no external assets)."""

from __future__ import annotations

from importlib import resources


def page() -> str:
    """The page's HTML."""
    return resources.files(__name__).joinpath("page.html").read_text(encoding="utf-8")
