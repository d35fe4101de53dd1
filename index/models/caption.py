"""Clip captioning with a vision-language model: one short factual caption per clip.

A *clip* is a few frames (PIL images) in time order. Two backends implement the
:class:`Captioner` protocol:

* ``hf:<model id or local dir>`` -- a Hugging Face image-text-to-text model run
  locally with ``transformers`` (``AutoProcessor`` + ``AutoModelForImageTextToText``),
  e.g. ``hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct``. Clips are captioned in
  batches with greedy decoding, so the same frames always give the same caption.
* ``openai:<model>`` -- any OpenAI-compatible vision chat endpoint (OpenAI, vLLM,
  Ollama, llama.cpp server, ...), one ``POST {base_url}/chat/completions`` per
  clip, frames sent inline as JPEG ``data:`` URLs. Only the standard library is
  used; there is no dependency on the ``openai`` package.

The loaders are called by the model registry, which turns a role setting into a
captioner; everything that cannot load or reach its model raises
:class:`vdisc.errors.ModelUnavailable` with one line that says what to change.
Heavy imports (torch, transformers, PIL) happen inside functions.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vdisc.errors import ConfigError, ModelUnavailable

if TYPE_CHECKING:  # pragma: no cover
    import PIL.Image
    import torch

__all__ = [
    "DEFAULT_PROMPT",
    "Captioner",
    "load_hf_captioner",
    "load_openai_captioner",
]

#: The instruction sent with every clip. Kept short: small VLMs follow short
#: prompts better, and every token of it is paid for once per clip.
DEFAULT_PROMPT = (
    "These frames are from one short video clip, in time order. "
    "Describe what happens in one or two factual sentences: the people, their actions, "
    "the objects, the setting, and any visible text."
)

#: Frames sent to an HTTP endpoint are downscaled so their longer side is at most this (pixels).
OPENAI_MAX_SIDE = 512
#: JPEG quality of those frames (0-95): small uploads, still legible text.
OPENAI_JPEG_QUALITY = 85
#: Completion budget per clip for the HTTP backend (tokens); one or two sentences fit easily.
OPENAI_MAX_TOKENS = 120
#: Used when neither the argument nor VDISC_CAPTION_BASE_URL / OPENAI_BASE_URL is set.
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


@runtime_checkable
class Captioner(Protocol):
    """Anything that turns clips (lists of frames in time order) into one caption each."""

    ref: str
    """Where the model comes from, e.g. ``"hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct"``."""

    def caption(self, clips: list[list["PIL.Image.Image"]], prompt: str = DEFAULT_PROMPT) -> list[str]:
        """Return exactly one caption per clip, in order (``""`` for a clip without frames)."""
        ...


def _one_line(text: object, limit: int = 300) -> str:
    """Collapse whitespace (newlines included) and cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    """``ExcType: first meaningful bit of the message``, on one line."""
    msg = _one_line(exc, 240)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# --------------------------------------------------------------------------- #
# Hugging Face backend
# --------------------------------------------------------------------------- #


class HFCaptioner:
    """A local image-text-to-text model; see :func:`load_hf_captioner`."""

    def __init__(
        self,
        ref: str,
        processor: Any,
        model: Any,
        device: str,
        batch_size: int,
        max_new_tokens: int,
    ) -> None:
        self.ref = ref
        self.processor = processor
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.tokenizer = getattr(processor, "tokenizer", processor)

    # -- prompt ---------------------------------------------------------------

    def _render(self, n_frames: int, prompt: str) -> str:
        """The text for one clip, with one image placeholder per frame."""
        if getattr(self.processor, "chat_template", None):
            content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_frames)]
            content.append({"type": "text", "text": prompt})
            messages = [{"role": "user", "content": content}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # No chat template: the plain "<image>...<image>\nprompt\n" convention of
        # base VLM checkpoints (Llava, Idefics, ...).
        image_token = getattr(self.processor, "image_token", None) or "<image>"
        return image_token * n_frames + "\n" + prompt + "\n"

    # -- generation -----------------------------------------------------------

    def _inputs_to_device(self, inputs: Any) -> dict[str, Any]:
        import torch

        model_dtype = getattr(self.model, "dtype", torch.float32)
        moved: dict[str, Any] = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                # pixel values etc. follow the weights (fp16/bf16 on GPU); ids stay integer
                if value.is_floating_point() and value.dtype != model_dtype:
                    value = value.to(model_dtype)
            moved[key] = value
        return moved

    def _caption_batch(self, clips: list[list["PIL.Image.Image"]], prompt: str) -> list[str]:
        import torch

        texts = [self._render(len(frames), prompt) for frames in clips]
        images = [[frame.convert("RGB") for frame in frames] for frames in clips]
        # A template that writes the BOS token itself must not get a second one.
        bos = getattr(self.tokenizer, "bos_token", None)
        add_special_tokens = not (bos and all(t.startswith(bos) for t in texts))
        inputs = self.processor(
            text=texts,
            images=images,
            padding=True,
            add_special_tokens=add_special_tokens,
            return_tensors="pt",
        )
        inputs = self._inputs_to_device(inputs)

        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": False,
            "num_beams": 1,
        }
        gen_cfg = getattr(self.model, "generation_config", None)
        if gen_cfg is not None and gen_cfg.pad_token_id is None and self.tokenizer.pad_token_id is not None:
            gen_kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        if gen_cfg is not None and gen_cfg.do_sample:
            # Greedy on purpose: drop sampling knobs so generate() does not warn about them.
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)

        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen_kwargs)
        # Left padding: every prompt ends at the same column, so new tokens start there.
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [_one_line(text, limit=10_000) for text in decoded]

    def caption(self, clips: list[list["PIL.Image.Image"]], prompt: str = DEFAULT_PROMPT) -> list[str]:
        captions = [""] * len(clips)
        todo = [i for i, frames in enumerate(clips) if len(frames) > 0]
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            for i, text in zip(idx, self._caption_batch([list(clips[i]) for i in idx], prompt)):
                captions[i] = text
        return captions

    def __repr__(self) -> str:
        return f"HFCaptioner({self.ref!r}, device={self.device!r})"


def _default_dtype(device: str) -> "torch.dtype | None":
    """bf16 where the GPU supports it, else fp16; None (the checkpoint's float32) on CPU."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_hf_captioner(
    model: str,
    device: str = "cpu",
    dtype: "torch.dtype | None" = None,
    batch_size: int = 4,
    max_new_tokens: int = 60,
) -> Captioner:
    """Load a Hugging Face image-text-to-text model (hub id or local directory) as a captioner.

    ``dtype`` is applied to the weights (and to the pixel inputs) when given; when it is
    None, CUDA devices get bfloat16 (float16 where bf16 is unsupported) and the CPU keeps
    the checkpoint's float32. The hub is reached only as ``transformers`` would (it honours
    ``HF_HUB_OFFLINE``). Raises :class:`ModelUnavailable` with one line if anything fails.
    """
    if batch_size < 1:
        raise ConfigError(f"caption batch_size must be at least 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ConfigError(f"caption max_new_tokens must be at least 1, got {max_new_tokens}")
    ref = f"hf:{model}"
    hint = "set the caption model to a local directory or a cached Hugging Face model id"
    local = os.path.expanduser(model)
    if os.path.isabs(local) or model.startswith((".", "~")) or os.path.isdir(local):
        if not os.path.isdir(local):
            raise ModelUnavailable(f"cannot load caption model {ref}: no such directory {local}")
        model = local
    elif os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        hint = (
            f"HF_HUB_OFFLINE is set, so it must be in the local cache (hf download {model}) "
            "or be a local directory"
        )

    try:
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError as exc:  # pragma: no cover - transformers is a core dependency
        raise ModelUnavailable(
            f"cannot load caption model {ref}: {_describe(exc)} (pip install transformers)"
        ) from None

    if dtype is None:
        dtype = _default_dtype(device)
    try:
        processor = AutoProcessor.from_pretrained(model)
        kwargs: dict[str, Any] = {}
        if dtype is not None:
            kwargs["dtype"] = dtype
        vlm = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
        vlm.to(device)
        vlm.eval()
    except ImportError as exc:
        # e.g. SmolVLM's processor needs `num2words`; the message names the package.
        raise ModelUnavailable(
            f"cannot load caption model {ref}: a dependency is missing: {_describe(exc)}"
        ) from None
    except Exception as exc:  # OSError (not found / offline), ValueError (not a VLM), torch errors, ...
        raise ModelUnavailable(f"cannot load caption model {ref}: {_describe(exc)}; {hint}") from None

    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        raise ModelUnavailable(f"cannot load caption model {ref}: its processor has no tokenizer; {hint}")
    # Decoder-only generation in a batch needs the padding on the left.
    tokenizer.padding_side = "left"
    image_processor = getattr(processor, "image_processor", None)
    if getattr(image_processor, "do_image_splitting", False):
        # Idefics3 / SmolVLM tile large images into up to 4x4 crops plus a global view
        # (~13x the image tokens). A clip is several frames: each is seen whole instead.
        image_processor.do_image_splitting = False
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return HFCaptioner(ref, processor, vlm, device, batch_size, max_new_tokens)


# --------------------------------------------------------------------------- #
# OpenAI-compatible HTTP backend
# --------------------------------------------------------------------------- #


def _pick_frames(frames: list[Any], max_frames: int) -> list[Any]:
    """At most ``max_frames`` frames spread evenly over the clip, first and last included."""
    n = len(frames)
    if n <= max_frames:
        return list(frames)
    if max_frames == 1:
        return [frames[n // 2]]
    step = (n - 1) / (max_frames - 1)
    return [frames[round(i * step)] for i in range(max_frames)]


def _jpeg_data_url(image: "PIL.Image.Image", max_side: int = OPENAI_MAX_SIDE) -> str:
    """The frame as a ``data:image/jpeg;base64,...`` URL, longer side at most ``max_side``."""
    from PIL import Image

    img = image.convert("RGB")  # always a copy, so thumbnail() leaves the caller's frame alone
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=OPENAI_JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAICaptioner:
    """An OpenAI-compatible vision chat endpoint; see :func:`load_openai_captioner`."""

    def __init__(
        self, model: str, base_url: str, api_key: str | None, timeout: float, max_frames: int
    ) -> None:
        self.ref = f"openai:{model}"
        self.model = model
        self.base_url = base_url
        self.url = base_url + "/chat/completions"
        self._api_key = api_key
        self.timeout = timeout
        self.max_frames = max_frames
        # A server on this machine is never reached through an HTTP proxy.
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(self.url) else []
        self._opener = urllib.request.build_opener(*handlers)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _fail(self, what: str) -> ModelUnavailable:
        return ModelUnavailable(self._redact(_one_line(what, 400)))

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(payload).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = _http_error_detail(exc)
            hint = {
                401: "check VDISC_CAPTION_API_KEY / OPENAI_API_KEY",
                403: "check VDISC_CAPTION_API_KEY / OPENAI_API_KEY",
                404: "check the base URL (VDISC_CAPTION_BASE_URL) and the model name",
                429: "rate limited or out of quota; retry later",
            }.get(exc.code, "the server failed; retry or check its logs" if exc.code >= 500 else "")
            raise self._fail(
                f"caption endpoint {self.url} answered HTTP {exc.code} for model {self.model!r}"
                + (f": {detail}" if detail else "")
                + (f"; {hint}" if hint else "")
            ) from None
        except urllib.error.URLError as exc:
            raise self._fail(
                f"cannot reach caption endpoint {self.url}: {_one_line(exc.reason, 150)}; "
                "check VDISC_CAPTION_BASE_URL and that the server is running"
            ) from None
        except (TimeoutError, socket.timeout):
            raise self._fail(
                f"caption endpoint {self.url} did not answer within {self.timeout:g} s; "
                "raise the timeout or check the server"
            ) from None
        except OSError as exc:  # connection reset, remote disconnected, ...
            raise self._fail(
                f"cannot reach caption endpoint {self.url}: {_describe(exc)}; "
                "check VDISC_CAPTION_BASE_URL and that the server is running"
            ) from None
        try:
            data = json.loads(body)
        except ValueError:
            raise self._fail(
                f"caption endpoint {self.url} did not return JSON; is it an OpenAI-compatible API?"
            ) from None
        if not isinstance(data, dict):
            raise self._fail(
                f"caption endpoint {self.url} returned unexpected JSON; is it an OpenAI-compatible API?"
            )
        return data

    def _caption_one(self, frames: list["PIL.Image.Image"], prompt: str) -> str:
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        for frame in _pick_frames(frames, self.max_frames):
            content.append({"type": "image_url", "image_url": {"url": _jpeg_data_url(frame)}})
        payload = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": OPENAI_MAX_TOKENS,
            "temperature": 0,
        }
        data = self._post(payload)
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise self._fail(
                f"caption endpoint {self.url} returned no choices[0].message; "
                "is it an OpenAI-compatible chat API?"
            ) from None
        text = message.get("content") if isinstance(message, dict) else None
        if isinstance(text, list):  # some servers answer with content parts
            text = " ".join(p.get("text", "") for p in text if isinstance(p, dict))
        return _one_line(text or "", limit=10_000)

    def caption(self, clips: list[list["PIL.Image.Image"]], prompt: str = DEFAULT_PROMPT) -> list[str]:
        return [self._caption_one(list(frames), prompt) if len(frames) else "" for frames in clips]

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICaptioner({self.ref!r}, base_url={self.base_url!r})"


def _http_error_detail(exc: urllib.error.HTTPError) -> str:
    """The server's own error message (OpenAI's ``{"error": {"message": ...}}``), shortened."""
    try:
        raw = exc.read(4096)
    except Exception:
        raw = b""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        err = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(err, dict):
            text = str(err.get("message") or err.get("detail") or err)
        elif err is not None:
            text = str(err)
    except ValueError:
        pass
    return _one_line(text or exc.reason or "", 160)


def load_openai_captioner(
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    max_frames: int = 4,
) -> Captioner:
    """A captioner backed by an OpenAI-compatible ``/chat/completions`` endpoint with image input.

    ``base_url`` defaults to ``VDISC_CAPTION_BASE_URL``, then ``OPENAI_BASE_URL``, then
    ``https://api.openai.com/v1``; ``api_key`` to ``VDISC_CAPTION_API_KEY``, then
    ``OPENAI_API_KEY`` (a local server may need none). Each clip costs one request carrying
    the prompt and up to ``max_frames`` evenly spaced frames as JPEG data URLs (longer side
    at most 512 px). Nothing is sent until :meth:`caption` is called.
    """
    if max_frames < 1:
        raise ConfigError(f"caption max_frames must be at least 1, got {max_frames}")
    if timeout <= 0:
        raise ConfigError(f"caption timeout must be positive, got {timeout}")
    base = (
        base_url
        or os.environ.get("VDISC_CAPTION_BASE_URL")
        or os.environ.get("OPENAI_BASE_URL")
        or OPENAI_DEFAULT_BASE_URL
    ).rstrip("/")
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        raise ModelUnavailable(
            f"caption endpoint base URL {base!r} is not an http(s) URL; set VDISC_CAPTION_BASE_URL"
        )
    key = api_key or os.environ.get("VDISC_CAPTION_API_KEY") or os.environ.get("OPENAI_API_KEY") or None
    if key is None and urllib.parse.urlsplit(base).hostname == "api.openai.com":
        raise ModelUnavailable(
            f"caption model openai:{model} needs an API key: set VDISC_CAPTION_API_KEY or OPENAI_API_KEY"
        )
    return OpenAICaptioner(model, base, key, timeout, max_frames)
