"""The model registry: the one place in vdisc that loads weights.

Each role (visual, text, asr, ocr, caption, rerank) maps a reference to a
loader in its own module. Resolution order for a role: the explicit setting -> a
bundled offline package (``vdisc[offline]``) -> the Hugging Face cache / hub
(honouring ``HF_HUB_OFFLINE``) -> one clear error naming the setting.

A role that cannot load is reported once (a ``Notice`` naming the role) and
then treated as absent, so an index run degrades (fewer channels) instead of
crashing. Loading is lazy: a role's heavy imports happen on first ``get``.
``rerank`` is for question time only (``vdisc.tools.rerank``, a second
reading of candidates against the question; search does not call it yet).
The ``llm`` setting is not a registry role: a chat model is an API client,
not weights, and ``vdisc.agent.chat_model`` builds it for the planner.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable

from vdisc.config import ROLES, Settings
from vdisc.errors import ModelUnavailable

from ..notices import Notice
from . import hub
from .device import half_dtype, resolve_device
from .spec import ModelSpec

log = logging.getLogger("vdisc")

# "auto" captioning on a CUDA GPU: a small open instruct VLM, when it is already in the Hugging Face cache.
DEFAULT_GPU_CAPTIONER = "hf:Qwen/Qwen2.5-VL-3B-Instruct"
ENABLE_HINT = {
    "visual": "set VDISC_VISUAL_MODEL to a cached open_clip model or local-dir:/path",
    "text": "pip install 'vdisc[offline]' or set VDISC_TEXT_MODEL",
    "asr": "pip install 'vdisc[offline]' or set VDISC_ASR_MODEL",
    "ocr": "pip install 'vdisc[offline]'",
    "caption": "set VDISC_CAPTION_MODEL=hf:<model id> or openai:<model>",
    "rerank": "set VDISC_RERANK_MODEL to a cached cross-encoder (hub id) or a local directory",
}
# The roles whose weights the registry loads (the llm setting is the planner's, see vdisc.agent.chat_model).
MODEL_ROLES = tuple(role for role in ROLES if role != "llm")

TRAINED_COMPRESSOR = "compressor.safetensors"  # in the library: what `vdisc train-compressor` writes by default

__all__ = ["Registry", "ModelSpec", "resolve_device", "ENABLE_HINT", "MODEL_ROLES", "Notice"]


class Registry:
    """Lazily loads and caches one model per role for a ``Settings``."""

    def __init__(self, settings: Settings, notify: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.notify = notify or (lambda msg: log.warning(msg))
        self._models: dict[str, Any] = {}
        self._reasons: dict[str, str] = {}
        self._device: str | None = None
        self._auto_captioner: tuple[str, str] | None = None
        # one load per role even when requests arrive together (vdisc serve answers searches and asks in
        # threads): a role's first users wait for its one load; a loaded role is read without a lock, and
        # a role that loads does not hold up another (a search's text model is not behind an ask's captioner)
        self._loading = {role: threading.RLock() for role in (*MODEL_ROLES, "compressor")}

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.settings.device)
        return self._device

    def ref(self, role: str) -> str:
        ref = self.settings.models[role].strip()
        if role == "caption" and ref == "auto":
            return self.auto_caption()[0]
        return ref

    def auto_caption(self) -> tuple[str, str]:
        """caption=auto: (the captioner to use, or "none" with why). The default VLM is used only when it
        is already in the Hugging Face cache: nothing is downloaded at run time unless a model is named."""
        if self._auto_captioner is None:
            repo = DEFAULT_GPU_CAPTIONER.partition(":")[2]
            if not self.device.startswith("cuda"):
                self._auto_captioner = ("none", "no CUDA GPU")
            elif not hub.cached(repo):
                self._auto_captioner = ("none", f"{repo} is not in the Hugging Face cache")
            else:
                self._auto_captioner = (DEFAULT_GPU_CAPTIONER, "")
        return self._auto_captioner

    def get(self, role: str) -> Any | None:
        """The loaded model for ``role``, or None if it is off or cannot load (said once)."""
        if role in self._models:
            return self._models[role]
        if role not in self._loading:
            return self._get(role)  # "llm" or an unknown role: said once, as below
        with self._loading[role]:
            return self._get(role)

    def _get(self, role: str) -> Any | None:
        if role in self._models:  # loaded by another thread while this one waited
            return self._models[role]
        if role in self._reasons:
            return None
        try:
            model = self.require(role)
        except ModelUnavailable as exc:
            self._reasons[role] = str(exc)
            if not (role == "rerank" and self.settings.models[role] == "auto"):
                # the default second-stage reader is an extra where cached, not a channel the user lost:
                # its absence is the usual case, shown by vdisc info / doctor, not said at every new library
                self.notify(Notice(f"{role} channel off: {exc}", role, self.settings.models[role],
                                   f"{role} channel off"))
            return None
        if model is None:
            if role == "caption" and self.settings.models["caption"] == "auto":
                why = self.auto_caption()[1]
                self.notify(Notice(f"captions off ({why}); to enable: {ENABLE_HINT['caption']}", role,
                                   "auto", f"captions off ({why})"))
        return model

    def require(self, role: str) -> Any | None:
        """Load ``role`` or raise ``ModelUnavailable``; None when the role is set to 'none'."""
        if role == "llm":
            raise ModelUnavailable("the llm setting names a chat-model client, not weights: "
                                   "vdisc.agent.chat_model loads it, not the model registry")
        if role not in MODEL_ROLES:
            raise ModelUnavailable(f"unknown model role {role!r}; roles are {', '.join(MODEL_ROLES)}")
        if role in self._models:
            return self._models[role]
        with self._loading[role]:
            if role in self._models:
                return self._models[role]
            ref = self.ref(role)
            if ref.lower() in ("none", "off", ""):
                self._models[role] = None
                return None
            self.settings.apply_environment()
            model = _LOADERS[role](self, ref)
            self._models[role] = model
            return model

    def compressor(self) -> Any | None:
        """The STORM-style clip compressor for the visual model, or None (off, or no visual model).

        ``auto`` loads trained weights when the library has them
        (``<library>/compressor.safetensors``, what ``vdisc train-compressor``
        writes, ``vdisc.training``) and is off otherwise: untrained, the encoder
        is an exact no-op on the clip embedding, so it would only cost time.
        ``untrained`` builds that no-op encoder anyway (token reduction only); a
        path loads weights from that file.
        """
        if "compressor" in self._models:
            return self._models["compressor"]
        with self._loading["compressor"]:
            return self._compressor()

    def _compressor(self) -> Any | None:
        if "compressor" in self._models:
            return self._models["compressor"]
        setting = self.compressor_source()
        visual = self.get("visual")
        model = None
        if visual is not None and setting != "off":
            from .compressor import ClipCompressor

            if setting == "untrained":
                model = ClipCompressor.for_visual(visual).eval()
            else:
                try:
                    model = ClipCompressor.load(setting, map_location=self.device)
                except (OSError, ValueError) as exc:
                    raise ModelUnavailable(f"cannot load the clip compressor {setting}: {exc}; "
                                           "fix VDISC_COMPRESSOR (or --compressor)") from None
                if model.config.dim != visual.spec.dim:
                    raise ModelUnavailable(f"the clip compressor {setting} works on {model.config.dim}-d tokens but "
                                           f"the visual model gives {visual.spec.dim}-d; retrain it for this model")
        self._models["compressor"] = model
        return model

    def trained_compressor(self) -> Any | None:
        """The compressor when it runs from trained weights (None when off or untrained): only then is
        its clip vector worth indexing, as the clip's temporal vector (``index/writer.py``)."""
        if self.compressor_source() in ("off", "untrained"):
            return None
        return self.compressor()

    def compressor_source(self) -> str:
        """What the compressor setting resolves to: "off", "untrained", or the weights file to load."""
        setting = self.settings.compressor.strip()
        if setting.lower() in ("off", "none", ""):
            return "off"
        if setting.lower() == "untrained":
            return "untrained"
        if setting.lower() == "auto":
            trained = self.settings.home.expanduser() / TRAINED_COMPRESSOR
            return str(trained) if trained.is_file() else "off"
        return setting

    def spec(self, role: str) -> ModelSpec | None:
        model = self.get(role)
        return getattr(model, "spec", None) if model is not None else None

    def status(self, load: bool = False) -> dict[str, dict[str, Any]]:
        """Per registry role: the reference, and (when loaded or ``load``) what it resolved to."""
        out: dict[str, dict[str, Any]] = {}
        for role in MODEL_ROLES:
            entry: dict[str, Any] = {"ref": self.settings.models[role]}
            if load:
                self.get(role)
            if role in self._models:
                model = self._models[role]
                if model is None:
                    entry["state"] = "off"
                else:
                    entry["state"] = "ready"
                    entry["spec"] = model.spec.model_dump()
            elif role in self._reasons:
                entry["state"], entry["reason"] = "unavailable", self._reasons[role]
            else:
                entry["state"] = "not loaded"
            out[role] = entry
        return out


def _load_visual(reg: Registry, ref: str) -> Any:
    from . import visual

    return visual.load(ref, reg.device, half_dtype(reg.device), reg.settings.batch_size)


def _load_text(reg: Registry, ref: str) -> Any:
    from . import text

    return text.load(ref, reg.device)


def _load_asr(reg: Registry, ref: str) -> Any:
    from . import asr

    return asr.load(ref, reg.device, reg.settings.asr_beam)


def _load_ocr(reg: Registry, ref: str) -> Any:
    from . import ocr

    return ocr.load(ref, reg.device)


def _load_rerank(reg: Registry, ref: str) -> Any:
    from . import rerank

    return rerank.load(ref, reg.device)


def _load_caption(reg: Registry, ref: str) -> Any:
    from . import caption

    kind, _, target = ref.partition(":")
    if kind == "hf" and target:
        model = caption.load_hf_captioner(target, device=reg.device, dtype=half_dtype(reg.device))
    elif kind == "openai" and target:
        model = caption.load_openai_captioner(
            target,
            base_url=os.environ.get("VDISC_CAPTION_BASE_URL") or None,
            api_key=os.environ.get("VDISC_CAPTION_API_KEY") or None,
        )
    else:
        raise ModelUnavailable(f"caption model {ref!r} is not 'none', 'auto', 'hf:<id>' or 'openai:<model>'; "
                               "fix VDISC_CAPTION_MODEL (or --caption-model)")
    return _Captioned(ModelSpec(role="caption", ref=ref, model_id=target), model)


class _Captioned:
    """A captioner with the spec the store records next to each caption."""

    def __init__(self, spec: ModelSpec, captioner: Any) -> None:
        self.spec, self.captioner = spec, captioner

    def caption(self, clips: list[list[Any]], prompt: str | None = None) -> list[str]:
        return self.captioner.caption(clips) if prompt is None else self.captioner.caption(clips, prompt)


_LOADERS: dict[str, Callable[[Registry, str], Any]] = {
    "visual": _load_visual,
    "text": _load_text,
    "asr": _load_asr,
    "ocr": _load_ocr,
    "caption": _load_caption,
    "rerank": _load_rerank,
}
