"""What every tool needs: the library's store, its model registry, its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from vdisc.config import Settings
from vdisc.errors import LibraryError

# Argument types the tools share; the descriptions are what a chat model reads in the tool schema.
VideoRef = Annotated[str, Field(description="a video's file name or id, as browse or search returned it")]
Start = Annotated[float, Field(description="window start, seconds from the start of the video")]
End = Annotated[float, Field(description="window end, seconds from the start of the video")]


@dataclass
class ToolContext:
    store: Any  # vdisc.index.store.Store
    registry: Any  # vdisc.index.models.Registry
    settings: Settings

    def video(self, session: Any, ref: str | int) -> Any:
        """The Video row for an id, path or file name, or LibraryError."""
        v = self.store.find_video(session, ref)
        if v is None:
            raise LibraryError(f"no indexed video matches {ref!r}; see vdisc ls")
        return v


def clamp_window(start: float, end: float, duration: float) -> tuple[float, float]:
    """[start, end] inside [0, duration]; raises on an empty window."""
    from vdisc.errors import ConfigError

    s, e = max(0.0, float(start)), min(float(end), float(duration))
    if e <= s:
        raise ConfigError(f"empty window {start:g}s-{end:g}s (the video lasts {duration:g}s)")
    return s, e
