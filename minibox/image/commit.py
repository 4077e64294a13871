"""``commit``: a container's writable layer becomes a new read-only layer on top of its image."""

import json
import os

from minibox.errors import UsageError
from minibox.image import changes as changes_mod
from minibox.image import reference
from minibox.image.store import now_rfc3339


def commit(store, rec: dict, ref: str | None, changes=(), message: str = "", author: str = ""):
    """Snapshot ``rec``'s upper dir (container record) into a new image; returns it.

    The layer is written to a temp tar, then goes through the same verified,
    atomic path as any pulled layer (add_layer_blob), so the new image shares
    every lower layer with its parent and owns one new layer dir.
    """
    target = reference.parse(ref) if ref else None
    if target is not None and target.digest:
        raise UsageError(f"commit: {ref!r}: refusing to create a tag with a digest reference")
    from minibox.image.layerdiff import layer_tar

    base = store.get(rec["image_id"])
    config = json.loads(json.dumps(base.config))
    changes_mod.apply(config.setdefault("config", {}), changes)
    store.ensure()
    tmp = store.mkdtemp("commit")
    try:
        path = os.path.join(tmp, "layer.tar")
        with open(path, "wb") as f:
            layer_tar(rec["rootfs"]["upper"], f)
        with store.gc_guard():
            with open(path, "rb") as f:
                info = store.add_layer_blob(f, label=f"commit {rec['id'][:12]}")
            created = now_rfc3339()
            config["created"] = created
            config["container"] = rec["id"]
            if author:
                config["author"] = author
            config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"] = \
                base.diff_ids + [info["diff_id"]]
            argv = [rec.get("path") or ""] + list(rec.get("args") or [])
            entry = {"created": created, "created_by": " ".join(a for a in argv if a)}
            if author:
                entry["author"] = author
            if message:
                entry["comment"] = message
            config["history"] = list(config.get("history") or []) + [entry]
            layers = list(base.meta.get("layers") or [{"diff_id": d} for d in base.diff_ids])
            layers.append({"diff_id": info["diff_id"], "blob": info["blob"], "media_type": info["media_type"]})
            raw = json.dumps(config, separators=(",", ":")).encode()
            return store.add_image(raw, layers, tags=[target] if target else ())
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
