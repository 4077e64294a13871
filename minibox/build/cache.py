"""The build cache: step keys, and the on-disk index from key to the step's result.

A step's key is a sha256 over exactly what decides its result:

* the parent: the previous step's key (the first step's parent is the base
  image id), so a changed step changes every key after it and none before;
* the instruction text after variable substitution;
* the build-args the step uses (for RUN: every ARG in effect, since they are
  its environment);
* for COPY/ADD, the digest of the copied files' names, modes, link targets
  and contents (:meth:`minibox.build.context.BuildContext.sources_digest`).

mtimes are never part of a key. The index lives in ``<root>/build/cache.json``
(directory 0700), is rewritten atomically (tmp + fsync + rename) under an
flock so concurrent builds do not lose each other's entries, and maps each key
to the layer the step produced (a diff_id, or None for a config-only step),
the image-config changes it made and its history line.
"""

import json
import os
import time
from collections.abc import Callable

_VERSION = 1


def step_key(parent: str, instruction: str, args: dict[str, str] | None = None,
             sources: str | None = None) -> str:
    """The cache key of one step, ``sha256:<hex>``."""
    import hashlib

    doc = {
        "v": _VERSION,
        "parent": parent,
        "instruction": instruction,
        "args": sorted((args or {}).items()),
        "sources": sources,
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def base_key(image_id: str | None) -> str:
    """The key a stage's first step hangs from: its base image (None for scratch)."""
    return step_key("", "FROM " + (image_id or "scratch"))


class CacheIndex:
    """``<root>/build/cache.json``: key → {layer, config, created_by, created, last_used, size}."""

    def __init__(self, root: str):
        self.dir = os.path.join(root, "build")
        self.path = os.path.join(self.dir, "cache.json")
        self._lock_path = os.path.join(self.dir, "cache.lock")

    # -- reading -------------------------------------------------------------

    def load(self) -> dict[str, dict]:
        """All entries; a missing or unreadable index is an empty cache (it is only a cache)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict) or doc.get("version") != _VERSION:
            return {}
        entries = doc.get("entries")
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> dict | None:
        return self.load().get(key)

    # -- writing -------------------------------------------------------------

    def put(self, key: str, layer: str | None, config: dict | None = None,
            created_by: str = "", size: int = 0, parent: str | None = None) -> dict:
        """Record a step's result; returns the stored entry."""
        now = time.time()
        entry = {
            "layer": layer,
            "config": config or {},
            "created_by": created_by,
            "size": size,
            "parent": parent,
            "created": now,
            "last_used": now,
        }
        with self._locked() as entries:
            entries[key] = entry
        return entry

    def touch(self, keys: list[str]) -> None:
        """Mark entries as used now (prune policies keep recently used steps)."""
        now = time.time()
        with self._locked() as entries:
            for key in keys:
                if key in entries:
                    entries[key]["last_used"] = now

    def prune(self, keep: Callable[[str, dict], bool] | None = None) -> dict[str, dict]:
        """Remove every entry ``keep`` rejects (all when ``keep`` is None); return the removed.

        The caller releases the removed entries' layers that no image uses.
        """
        removed: dict[str, dict] = {}
        with self._locked() as entries:
            for key in list(entries):
                if keep is None or not keep(key, entries[key]):
                    removed[key] = entries.pop(key)
        return removed

    def layers(self) -> set[str]:
        """diff_ids the cache still refers to (a layer GC must keep them)."""
        return {e["layer"] for e in self.load().values() if e.get("layer")}

    def _locked(self):
        return _Locked(self)


class _Locked:
    """flock the index, hand out its entries, write them back atomically on success."""

    def __init__(self, index: CacheIndex):
        self.index = index
        self.fd = -1
        self.entries: dict[str, dict] = {}

    def __enter__(self) -> dict[str, dict]:
        import fcntl

        os.makedirs(self.index.dir, mode=0o700, exist_ok=True)
        self.fd = os.open(self.index._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.entries = self.index.load()
        return self.entries

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                from minibox.atomic import write_json

                write_json(self.index.path, {"version": _VERSION, "entries": self.entries})
        finally:
            os.close(self.fd)
