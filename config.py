"""Settings for vdisc, with one precedence everywhere.

argument > CLI flag > ``VDISC_*`` environment variable > ``config.toml`` in the
library directory > default. The CLI turns flags into arguments, so the API and
the CLI resolve settings the same way. This module imports nothing from vdisc.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator

DEFAULT_HOME = Path("~/.vdisc")

# Model references per role. A reference is a registry name, "hf-hub:org/name",
# "local-dir:/path" (or a plain directory), or "none" to switch the role off.
DEFAULT_MODELS: dict[str, str] = {
    "visual": "ViT-B-32@laion2b_s34b_b79k",  # open_clip name@pretrained tag
    "text": "all-MiniLM-L6-v2",  # sentence-transformers; bundled by [offline]
    "asr": "tiny.en",  # faster-whisper; bundled by [offline]
    "ocr": "rapidocr",  # RapidOCR (onnxruntime); [offline]
    "caption": "auto",  # a small VLM on a CUDA GPU, else none
    "rerank": "auto",  # a sentence-transformers CrossEncoder, query time only; auto: only when already cached
    "llm": "none",  # the planner's chat model; none = the offline planner
}
ROLES = tuple(DEFAULT_MODELS)


class Settings(BaseModel):
    """Every knob of the index and search, with documented defaults."""

    home: Path = Field(DEFAULT_HOME, description="library directory")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    offline: bool = Field(False, description="never contact the Hugging Face hub")
    decoder: str = Field("auto", description="auto | pyav | decord | torchcodec")

    # Sampling and segmentation.
    fps: float = Field(1.0, gt=0, le=30, description="frames per second kept for perception")
    cut_fps: float = Field(4.0, gt=0, le=30, description="frames per second scanned for shot cuts")
    max_side: int = Field(640, ge=64, description="longest side of decoded frames, pixels")
    clip_seconds: float = Field(10.0, gt=0, description="longest clip; longer shots are split")
    min_clip_seconds: float = Field(1.0, ge=0, description="shots shorter than this merge forward")
    cut_threshold: float = Field(0.35, gt=0, lt=1, description="histogram distance that makes a cut")
    scene_similarity: float = Field(0.75, gt=0, lt=1, description="clips at least this alike join a scene")
    scene_max_seconds: float = Field(180.0, gt=0, description="longest scene")

    # Perception.
    batch_size: int = Field(32, ge=1, description="frames per visual-encoder batch")
    ocr_frames_per_clip: int = Field(3, ge=0, description="fewest OCR reads per clip (0: no OCR)")
    ocr_every: float = Field(2.0, gt=0, description="longest gap (seconds) between OCR reads in a clip: a line "
                                                    "shown at least this long is read, whatever the clip's length")
    caption_frames: int = Field(3, ge=1, description="frames shown to the captioner per clip")
    asr_beam: int = Field(5, ge=1, le=16, description="Whisper's beam width: 5 reads names and numbers better "
                                                      "than greedy 1, which transcribes 1.3-1.7x faster on a CPU")

    span_support: float = Field(60.0, gt=0, description="longest moment (seconds) a tool observation may return "
                                                          "and still support an answer's span; a browse entry, "
                                                          "an hour or a whole video never does")
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="the offline planner answers \"not found\" (naming the nearest candidate) "
                                      "below this grounded confidence; None: the value calibrated for the text "
                                      "model on the dev split (agent/calibration.json), else 0.15")
    llm_context: int = Field(8000, ge=1000, description="tokens of context the planner's chat model may be "
                                                         "sent per call (its window); tool results are cut "
                                                         "and old ones summarised to stay under it")
    compressor: str = Field("auto", description="inspect's clip compressor: auto (on only when trained weights "
                                                "are in the library, <library>/compressor.safetensors), a "
                                                "trained weights file, untrained (the no-op encoder: token "
                                                "reduction only), or off")

    # Memory of long and live videos (index/memory.py).
    retention_hours: float | None = Field(
        None, gt=0, description="drop frame-level vectors (and frame rows) of clips that ended more than this "
                                "many hours before a video's latest media; clip, scene, hour and day levels "
                                "stay searchable. None keeps every frame")

    models: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MODELS))
    _explicit: set[str] = PrivateAttr(default_factory=set)  # roles set by argument, env or config file

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        v = v.strip().lower()
        if v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {v!r}")

    @field_validator("models")
    @classmethod
    def _check_roles(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = set(v) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown model role(s) {sorted(unknown)}; roles are {list(ROLES)}")
        return {**DEFAULT_MODELS, **v}

    @property
    def db_path(self) -> Path:
        return self.home / "library.db"

    @property
    def vectors_dir(self) -> Path:
        return self.home / "vectors"

    @classmethod
    def load(cls, home: str | Path | None = None, **overrides: Any) -> "Settings":
        """Resolve settings: overrides > VDISC_* env > <home>/config.toml > defaults.

        ``overrides`` whose value is None are ignored, so CLI flags that were not
        given fall through. Model overrides go in ``models={"asr": "none"}``.
        """
        env = os.environ
        home_path = Path(home or env.get("VDISC_HOME") or DEFAULT_HOME).expanduser()
        data: dict[str, Any] = _read_config_file(home_path / "config.toml")
        data["home"] = home_path

        for name, field in cls.model_fields.items():
            key = f"VDISC_{name.upper()}"
            if name not in ("home", "models") and key in env:
                data[name] = _env_value(env[key], field.annotation)
        models = dict(data.get("models") or {})
        for role in ROLES:
            if f"VDISC_{role.upper()}_MODEL" in env:
                models[role] = env[f"VDISC_{role.upper()}_MODEL"]

        models.update({k: v for k, v in (overrides.pop("models", None) or {}).items() if v})
        data.update({k: v for k, v in overrides.items() if v is not None})
        data["models"] = models
        settings = cls(**data)
        settings._explicit = set(models)
        return settings

    def with_library_models(self, recorded: dict[str, str]) -> "Settings":
        """These settings, with the models a library was built with for every role not set explicitly.

        A library remembers its models, so reopening it without flags searches
        with the same encoders that made its vectors.
        """
        chosen = {role: ref for role, ref in recorded.items() if role in ROLES and role not in self._explicit}
        if not chosen:
            return self
        out = self.model_copy(update={"models": {**self.models, **chosen}})
        out._explicit = set(self._explicit)
        return out

    def apply_environment(self) -> None:
        """Export what third-party libraries read from the environment.

        Must run before any Hugging Face import: they read HF_HUB_OFFLINE once.
        """
        if self.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _env_value(raw: str, annotation: Any) -> Any:
    if annotation is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if raw.strip().lower() in ("", "none", "off") and type(None) in getattr(annotation, "__args__", ()):
        return None  # an optional setting switched off from the environment
    return raw


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return {}
    with path.open("rb") as fh:
        return dict(tomllib.load(fh))


# Granularities, coarse to fine. Hours and days are consolidated memory (index/memory.py); events
# (utterances, text tracks) sit beside clips with their own true extent (index/events.py).
Level = Literal["video", "day", "hour", "scene", "clip", "event", "frame"]
LEVELS: tuple[str, ...] = ("video", "day", "hour", "scene", "clip", "event", "frame")
Modality = Literal["visual", "speech", "ocr", "caption", "summary"]
MODALITIES: tuple[str, ...] = ("visual", "speech", "ocr", "caption", "summary")
