"""Videos named by URL (``s3://bucket/talk.mp4``, ``gs://``, ``az://``, ``file://``, ``memory://``), read through fsspec.

A remote cluster's workers often see no shared filesystem, but they can all
read object storage: ``vdisc index s3://bucket/videos/ --ray ADDRESS`` hands
each worker a URL, and the worker opens it through fsspec. The URL is the
video's identity in the library (its ``path``), so indexing it again is
"unchanged" and a search hit names the URL.

- **Admission** (the driver): the listing (a URL ending in a folder is walked
  for video extensions), size, fingerprint (size + first and last MiB, as for
  a local file) and probe (PyAV reading the container's headers from an fsspec
  file object) read only a few MiB.
- **Perception** (a worker, or this process without Ray): the decoders read a
  local file, so the video is streamed to a temporary copy (``TMPDIR``) that
  is removed when its perception is done, whatever the outcome. Frames and
  speech are decoded from that one copy (two readers at once, which a file
  object could not serve).

fsspec is optional: ``pip install 'vdisc[ray]'`` brings it; a filesystem
other than the local and memory ones needs its own package (``s3fs``,
``gcsfs``, ``adlfs``), which fsspec names when it is missing. Credentials are
the filesystem's usual ones (environment, config files, instance roles) on
every machine that reads.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from vdisc.errors import ConfigError, DecodeError, VdiscError

INSTALL_HINT = "pip install 'vdisc[ray]' (or pip install fsspec)"
COPY_CHUNK = 8 << 20  # bytes per read when streaming a video to its local copy
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")  # two letters at least: C:\ is a Windows path, not a URL


def is_url(value: object) -> bool:
    return isinstance(value, (str, RemoteFile)) and bool(_URL.match(str(value)))


def import_fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise ConfigError(f"reading videos from URLs needs fsspec, which is not installed: {INSTALL_HINT}") from None
    return fsspec


@dataclass(frozen=True)
class _Stat:
    st_size: int


class RemoteFile:
    """A video at a URL, with the few ``Path`` methods indexing uses (name, suffix, exists, stat, open)."""

    def __init__(self, url: str) -> None:
        fsspec = import_fsspec()
        self.url = str(url)
        try:
            self.fs, self.fs_path = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:  # an unknown protocol, or its package (s3fs, gcsfs) missing
            raise ConfigError(f"{self.url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if "::" not in self.url and hasattr(self.fs, "unstrip_protocol"):
            # one spelling per file (memory://x and memory:///x are one file): the library's identity for it
            self.url = self.fs.unstrip_protocol(self.fs_path)
        self.name = PurePosixPath(self.fs_path.rstrip("/")).name
        self.suffix = PurePosixPath(self.name).suffix

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemoteFile({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteFile) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __reduce__(self) -> tuple[Any, ...]:  # travels as its URL (a worker opens its own filesystem)
        return (RemoteFile, (self.url,))

    def exists(self) -> bool:
        try:
            return bool(self.fs.exists(self.fs_path))
        except OSError:
            return False

    def is_dir(self) -> bool:
        try:
            return bool(self.fs.isdir(self.fs_path))
        except OSError:
            return False

    def resolve(self) -> "RemoteFile":
        return self

    def expanduser(self) -> "RemoteFile":
        return self

    def stat(self) -> _Stat:
        return _Stat(int(self.fs.size(self.fs_path)))

    def open(self, mode: str = "rb") -> Any:
        return self.fs.open(self.fs_path, mode)


def as_path(value: "str | os.PathLike[str] | RemoteFile") -> "Path | RemoteFile":
    """A URL as a RemoteFile, anything else as a Path."""
    if isinstance(value, RemoteFile):
        return value
    return RemoteFile(str(value)) if is_url(value) else Path(value)


def exists(path: str) -> bool:
    """Whether a stored video path (a local path or a URL) is still there."""
    try:
        return as_path(path).exists()
    except ConfigError:  # a URL whose filesystem is not installed here: not known to be gone
        return True


def expand(url: str, extensions: frozenset[str]) -> list[RemoteFile]:
    """A URL as files: itself, or (a folder or prefix) the video files under it, sorted."""
    top = RemoteFile(url)
    if not top.is_dir():
        return [top]
    protocol = top.fs.protocol[0] if isinstance(top.fs.protocol, (tuple, list)) else top.fs.protocol
    out = []
    for found in sorted(top.fs.find(top.fs_path)):
        if PurePosixPath(found).suffix.lower() in extensions:
            out.append(RemoteFile(f"{protocol}://{found}"))
    return out


def probe(path: RemoteFile) -> Any:
    """VideoInfo from the container's headers, read through fsspec (PyAV reads a file object)."""
    import av

    from .decode.probing import _probe_container

    if not path.exists():
        raise DecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: file is empty")
    with path.open("rb") as fh:
        try:
            container = av.open(fh, mode="r")
        except (av.error.FFmpegError, OSError) as exc:
            raise DecodeError(f"{path}: not a video file, or a damaged or incomplete one "
                              f"(FFmpeg cannot read it: {exc})") from exc
        try:
            return _probe_container(container, str(path), str(path), True)
        finally:
            container.close()


@contextlib.contextmanager
def local_copy(path: "Path | RemoteFile") -> Iterator[Path]:
    """A local path to decode: the file itself, or a URL streamed to a temporary copy removed afterwards."""
    if not isinstance(path, RemoteFile):
        yield Path(path)
        return
    fd, name = tempfile.mkstemp(prefix="vdisc-", suffix=path.suffix or ".video")
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, COPY_CHUNK)
        try:
            yield Path(name)
        except VdiscError as exc:  # the user named the URL, not this temporary copy
            if name not in str(exc):
                raise
            raise type(exc)(str(exc).replace(name, str(path))) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
