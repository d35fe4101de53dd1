"""`vdisc doctor`: what works on this machine and whether the library is sound.

Each check is a dict ``{"name", "ok", "detail", "fix"}``: decoders and why one
is missing, library versions (FFmpeg, PyAV, decord, torch), CUDA, every model
role (loaded for real, with the setting to change), the library's integrity
(schema version, FAISS vectors equal to SQLite rows, no half-indexed videos)
and free disk.
"""

from __future__ import annotations

import importlib.metadata as md
import shutil
from typing import Any


def _check(name: str, ok: bool, detail: str = "", fix: str = "") -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "detail": detail, "fix": "" if ok else fix}


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def run_checks(lib: Any) -> dict[str, Any]:
    from vdisc.index import decode
    from vdisc.index.models import ENABLE_HINT

    checks = []
    for name, why in decode.available_backends().items():
        checks.append(_check(f"decoder {name}", why is None, "usable" if why is None else why,
                             why or ""))  # the reason already says how to install it
    import av

    versions = {"libavcodec (PyAV)": ".".join(map(str, av.library_versions.get("libavcodec", ()))) or "?",
                **{d: _version(d) or "not installed" for d in ("av", "decord", "torch", "faiss-cpu", "faiss-gpu")}}
    checks.append(_check("versions", True, ", ".join(f"{k} {v}" for k, v in versions.items())))
    try:
        import torch

        cuda = torch.cuda.is_available()
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
        checks.append(_check("cuda", True, ", ".join(gpus) if gpus else "no CUDA GPU visible; running on the CPU"))
    except ImportError:
        checks.append(_check("cuda", False, "torch is not installed", "pip install torch"))
    checks.append(_check("device", True, lib.registry.device))

    for role, st in lib.registry.status(load=True).items():
        if st["state"] == "ready":
            checks.append(_check(f"model {role}", True, f"{st['ref']} -> {st['spec']['model_id']}"))
        elif st["state"] == "off":
            checks.append(_check(f"model {role}", True, f"{st['ref']}: off"))
        else:
            checks.append(_check(f"model {role}", False, st.get("reason", ""), ENABLE_HINT.get(role, "")))

    home = lib.settings.home
    if lib.settings.db_path.exists():
        checks += _library_checks(lib)
    else:
        checks.append(_check("library", True, f"{home} has no index yet"))
    free = shutil.disk_usage(home if home.exists() else home.parent if home.parent.exists() else "/").free
    checks.append(_check("free disk", free > 2 << 30, f"{free / 2**30:.1f} GiB free",
                         "free some disk: an hour of video needs a few hundred MB of index"))
    return {"ok": all(c["ok"] for c in checks), "checks": checks}


def _library_checks(lib: Any) -> list[dict[str, Any]]:
    from sqlalchemy import func, select

    from vdisc.index.store import SCHEMA_VERSION, UNIT_TABLES, TextChunk, Video

    store = lib.store
    out = [_check("schema", store.schema_version == SCHEMA_VERSION, f"version {store.schema_version}",
                  "upgrade vdisc")]
    with store.session() as s:
        stale = s.scalar(select(func.count()).select_from(Video).where(Video.status != "done")) or 0
        out.append(_check("half-indexed videos", stale == 0, f"{stale} not finished",
                          "run vdisc index again on those files (it starts them over)"))
        for index in store.vector_indexes():
            if index.modality == "visual":
                rows = s.scalar(select(func.count()).select_from(UNIT_TABLES[index.level])) or 0
            else:
                rows = s.scalar(select(func.count()).select_from(TextChunk).where(
                    TextChunk.level == index.level, TextChunk.modality == index.modality)) or 0
            out.append(_check(f"vectors {index.level}.{index.modality}", len(index) == rows,
                              f"{len(index)} vectors, {rows} rows",
                              "re-index the library (vdisc index --force PATH)"))
    return out
