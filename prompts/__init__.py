"""Prompt texts, one file per prompt, as package data.

``render(name, **vars)`` fills ``$name`` placeholders (``string.Template``, so
JSON braces in a prompt need no escaping). A directory in ``VDISC_PROMPTS_DIR``
overrides any file by name.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from string import Template

NAMES = ("planner_system", "tool_guidance", "answer_format", "budget_exhausted", "call_a_tool")


def load(name: str) -> str:
    """The raw text of prompt ``name`` (an override in VDISC_PROMPTS_DIR wins)."""
    if name not in NAMES:
        raise KeyError(f"unknown prompt {name!r}; prompts are {', '.join(NAMES)}")
    override = os.environ.get("VDISC_PROMPTS_DIR")
    if override and (Path(override) / f"{name}.md").is_file():
        return (Path(override) / f"{name}.md").read_text(encoding="utf-8")
    return resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")


def render(name: str, **variables: object) -> str:
    """Prompt ``name`` with its ``$variables`` filled; a missing variable is an error."""
    return Template(load(name)).substitute({k: str(v) for k, v in variables.items()}).strip()
