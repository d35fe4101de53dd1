"""Times for people: float seconds as ``h:mm:ss`` (times are float seconds everywhere else).

At the bottom of the house beside ``config.py`` and ``errors.py``: it imports
nothing of vdisc, so the index, the tools, the agent, the CLI and the page all
print times the same way.
"""

from __future__ import annotations


def hms(seconds: float) -> str:
    """``h:mm:ss``, rounded to the second; negative times show as ``0:00:00``."""
    seconds = max(0, int(round(float(seconds))))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


__all__ = ["hms"]
