"""Pruning the build cache: drop cache entries, then the layers nothing uses any more.

A layer stays while any image or any remaining cache entry refers to it:
images share layers with the cache (an image's layers are its build steps'),
so pruning the cache never breaks an image. ``builder prune`` and
``system prune`` call :func:`prune`.
"""

import os
import shutil

from minibox.build.cache import CacheIndex


def prune(root: str, all_entries: bool = True) -> tuple[int, int]:
    """Remove the cache entries (all of them: -a and the default agree here) and the layers
    only they kept; return (entries removed, bytes of layers freed)."""
    from minibox.image.store import ImageStore

    index = CacheIndex(root)
    removed = index.prune()
    store = ImageStore(root)
    in_use = {d for img in store.images() for d in img.diff_ids} | index.layers()
    freed = 0
    for layer in sorted({e["layer"] for e in removed.values() if e.get("layer")}):
        if layer in in_use or not store.has_layer(layer):
            continue
        freed += store.layer_info(layer).get("size", 0)
        remove_layer(store, layer)
    return len(removed), freed


def remove_layer(store, diff_id: str) -> None:
    """Delete one unused layer dir and its short link, under the store's lock."""
    custom = getattr(store, "remove_layer", None)
    if custom is not None:
        custom(diff_id)
        return
    info = store.layer_info(diff_id)
    layer_dir = os.path.dirname(store.layer_dir(diff_id))
    with store.lock():
        link = info.get("link")
        if link:
            try:
                os.unlink(store.path("l", link))
            except FileNotFoundError:
                pass
        # Rename first: a half-deleted dir never looks like a complete layer.
        doomed = store.path("tmp", f"gc-{os.getpid()}-{os.path.basename(layer_dir)}")
        os.makedirs(store.path("tmp"), mode=0o700, exist_ok=True)
        os.rename(layer_dir, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def disk_usage(root: str) -> tuple[int, int]:
    """(number of cache entries, bytes of the distinct layers they refer to)."""
    from minibox.image.store import ImageStore

    entries = CacheIndex(root).load()
    store = ImageStore(root)
    layers = {e["layer"] for e in entries.values() if e.get("layer")}
    return len(entries), sum(store.layer_info(d).get("size", 0) for d in layers if store.has_layer(d))
