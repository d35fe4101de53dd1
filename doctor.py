"""`vdisc doctor`: what works on this machine and whether the library is sound.

Each check is a dict ``{"name", "ok", "state", "detail", "fix"}``. Its state
is ``ok``, ``off`` (an optional part that is absent: fine, and the fix says
how to enable it) or ``bad`` (really broken; ``ok`` is False only then, and
only then does ``vdisc doctor`` exit non-zero). The checks: decoders and why
one is missing (bad only when none is usable, or the one the ``decoder``
setting names is not), library versions (FFmpeg, PyAV, decord, torch), CUDA,
every model role, loaded for real, with the setting to change (a role that
cannot load is bad when the library was built with it, see
``Store.roles_used``, and off otherwise), the llm setting (its client is
built, never called), the library's integrity (schema version, every row of
a finished or live video with its FAISS vector and no vector without a row,
every event with its text row, half-indexed videos and their checkpoints) and free disk. Frames dropped
by the retention policy (``retention_hours``) lose their rows with their
vectors, so they are neither missing nor orphans; an hour or day still being
consolidated (not ``ready``) is not yet expected to have vectors.
"""

from __future__ import annotations

import importlib.metadata as md
import shutil
from typing import Any


def _check(name: str, ok: bool, detail: str = "", fix: str = "") -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "state": "ok" if ok else "bad", "detail": detail, "fix": "" if ok else fix}


def _off(name: str, detail: str, fix: str = "") -> dict[str, Any]:
    """An optional part that is absent: not a failure (``ok``), with how to enable it."""
    return {"name": name, "ok": True, "state": "off", "detail": detail, "fix": fix}


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def run_checks(lib: Any) -> dict[str, Any]:
    from vdisc.agent import chat_model
    from vdisc.errors import ModelUnavailable
    from vdisc.index import decode
    from vdisc.index.models import ENABLE_HINT

    checks = []
    backends = decode.available_backends()
    any_usable = any(why is None for why in backends.values())
    for name, why in backends.items():
        if why is None:
            checks.append(_check(f"decoder {name}", True, "usable"))
        elif any_usable and lib.settings.decoder != name:  # another decoder does the work
            checks.append(_off(f"decoder {name}", why, why))  # the reason already says how to install it
        else:
            checks.append(_check(f"decoder {name}", False, why, why))
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

    used = lib.store.roles_used() if lib.settings.db_path.exists() else set()
    for role, st in lib.registry.status(load=True).items():
        name, hint = f"model {role}", ENABLE_HINT.get(role, "")
        if st["state"] == "ready":
            checks.append(_check(name, True, f"{st['ref']} -> {st['spec']['model_id']}"))
        elif st["state"] == "off":
            why = (f" ({lib.registry.auto_caption()[1]})" if role == "caption" and st["ref"].strip() == "auto"
                   else " by its setting")
            if role in used:
                why += "; the library was built with it: " + ("its vectors go unsearched" if role in ("visual", "text")
                                                               else "new videos and inspect go without it")
            checks.append(_off(name, f"{st['ref']}: off{why}", hint))
        elif role in used:
            checks.append(_check(name, False, f"{st.get('reason', '')} (the library was built with it)", hint))
        else:
            unused = "the library does not use it" if lib.settings.db_path.exists() else "no library uses it yet"
            checks.append(_off(name, f"{st.get('reason', '')} ({unused})", hint))
    llm = chat_model.status(lib.settings.models["llm"])
    if llm["state"] == "offline":
        checks.append(_off("model llm", f"{llm['ref']}: no LLM configured; the offline planner answers",
                           chat_model.ENABLE_HINT))
    else:
        try:
            chat = chat_model.load(llm["ref"])
            checks.append(_check("model llm", True, f"{chat.where} (client set up; not contacted)"))
        except ModelUnavailable as exc:
            checks.append(_check("model llm", False, str(exc), chat_model.ENABLE_HINT))

    comp = lib.compressor_status()
    try:
        lib.registry.compressor()  # a weights file that no longer loads is broken; off is fine
    except ModelUnavailable as exc:
        checks.append(_check("compressor", False, str(exc), "fix VDISC_COMPRESSOR (or --compressor)"))
    else:
        detail = f"{comp['setting']}: {comp['detail']}"
        checks.append(_check("compressor", True, detail) if comp["state"] == "on"
                      else _off("compressor", detail, "vdisc train-compressor"))

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

    from vdisc.index.checkpoint import partial_size
    from vdisc.index.store import (
        PERIOD_LEVELS, SCHEMA_VERSION, UNIT_MODALITIES, UNIT_TABLES, VISIBLE_STATUSES, Event, Period, TextChunk, Video,
    )

    store = lib.store
    out = [_check("schema", store.schema_version == SCHEMA_VERSION, f"version {store.schema_version}",
                  "upgrade vdisc")]
    with store.session() as s:
        # a live video's newest batch may have rows whose vectors are being written: only
        # finished videos must be whole
        done = set(s.scalars(select(Video.id).where(Video.status == "done")))
        live = s.scalars(select(Video.name).where(Video.status == "live")).all()
        stale = s.scalars(select(Video.name).where(Video.status.not_in(VISIBLE_STATUSES))).all()
        unready = set(s.scalars(select(Period.id).where(Period.ready.is_(False))))
        waiting, size = partial_size(store.home)
        detail = f"{len(stale)} not finished" + (f" ({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''})"
                                                 if stale else "")
        if waiting:
            detail += f"; checkpoints of {waiting} interrupted video(s), {size / 2**20:.1f} MiB"
        out.append(_check("half-indexed videos", not stale, detail,
                          "run vdisc index again on those files: it resumes from the checkpoints"))
        if live:
            out.append(_check("live videos", True, f"{len(live)} being followed, or left by a follower that "
                              f"died (the next vdisc index settles those): {', '.join(live[:3])}"))
        # an event and its text row are written in one transaction: one without the other is damage
        texts = select(TextChunk.unit_id).where(TextChunk.level == "event")
        bare = s.scalar(select(func.count()).select_from(Event).where(Event.video_id.in_(done),
                                                                       Event.id.not_in(texts)))
        orphan_texts = s.scalar(select(func.count()).select_from(TextChunk).where(
            TextChunk.level == "event", TextChunk.unit_id.not_in(select(Event.id))))
        n_events = s.scalar(select(func.count()).select_from(Event))
        out.append(_check("events", not bare and not orphan_texts,
                          f"{n_events} utterances and text tracks" + (f": {bare} without text rows" if bare else "")
                          + (f", {orphan_texts} text rows without their event" if orphan_texts else ""),
                          "re-index the library (vdisc index --force PATH)"))
        # After a crash the unfinished video may have rows without vectors (or the reverse);
        # what must hold is that finished videos are whole and no vector lacks its row.
        for index in store.vector_indexes():
            if index.modality in UNIT_MODALITIES:
                table = UNIT_TABLES[index.level]
                owner = table.id if index.level == "video" else table.video_id
                query = select(table.id, owner)
                if table is Period:
                    query = query.where(Period.level == index.level)
                rows = dict(s.execute(query).all())
                building = unready if index.level in PERIOD_LEVELS else set()
            else:
                rows = dict(s.execute(select(TextChunk.id, TextChunk.video_id).where(
                    TextChunk.level == index.level, TextChunk.modality == index.modality)).all())
                building = set()
                if index.level in PERIOD_LEVELS and unready:
                    building = set(s.scalars(select(TextChunk.id).where(
                        TextChunk.level == index.level, TextChunk.unit_id.in_(unready))))
            ids = index.ids().tolist()
            unique = set(ids)
            missing = sum(1 for i, v in rows.items() if v in done and i not in unique and i not in building)
            orphans = len(unique - rows.keys())
            damaged = index.check()  # the segment files its manifest names are all there, whole
            ok = len(unique) == len(ids) and not missing and not orphans and not damaged
            problems = [f"{missing} rows without vectors"] * bool(missing) + \
                [f"{orphans} vectors without rows"] * bool(orphans) + \
                [f"{len(ids) - len(unique)} duplicates"] * (len(unique) != len(ids)) + damaged
            out.append(_check(f"vectors {index.level}.{index.modality}", ok,
                              f"{len(ids)} vectors, {len(rows)} rows" + (": " + ", ".join(problems) if problems else ""),
                              "re-index the library (vdisc index --force PATH)"))
    return out
