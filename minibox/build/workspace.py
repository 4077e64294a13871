"""A step's scratch space: the previous layers mounted under a fresh writable upper.

``Workspace`` makes ``<root>/build/tmp/<pid>-<rand>/`` (0700) holding
``upper``, ``work``, ``merged`` and ``bundle``; it mounts the overlay of the
layers so far (or, for a stage with no layers yet, uses ``upper`` itself as
the rootfs), and :meth:`commit` turns ``upper`` into a layer in the image
store. Leaving the ``with`` block always unmounts and deletes the dir, so a
failing or interrupted step leaves neither a mount nor files behind; dirs of
a build that was SIGKILLed are reaped by :func:`reap_stale` on the next build.
"""

import os
import shutil


class _Layers:
    """The shape mount_overlay wants from an image: its diff_ids (bottom first)."""

    def __init__(self, diff_ids: list[str]):
        self.diff_ids = list(diff_ids)
        self.short_id = "build"


def tmp_root(root: str) -> str:
    return os.path.join(root, "build", "tmp")


def reap_stale(root: str) -> None:
    """Unmount and delete workspaces whose build process is gone."""
    base = tmp_root(root)
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return
    from minibox.image.fsutil import pid_alive
    from minibox.image.overlay import unmount_overlay

    for name in names:
        try:
            pid = int(name.split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid() or pid_alive(pid):
            continue
        path = os.path.join(base, name)
        for sub in ("src", "merged"):
            unmount_overlay(os.path.join(path, sub))
        shutil.rmtree(path, ignore_errors=True)


class Workspace:
    """Context manager: ``rootfs`` is ready inside the block, gone after it."""

    def __init__(self, root: str, store, diff_ids: list[str]):
        self.root = root
        self.store = store
        self.diff_ids = list(diff_ids)
        self.dir = ""
        self.rootfs = ""
        self.mounted: list[str] = []

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def __enter__(self):
        base = tmp_root(self.root)
        os.makedirs(base, mode=0o700, exist_ok=True)
        os.chmod(os.path.join(self.root, "build"), 0o700)
        self.dir = os.path.join(base, f"{os.getpid()}-{os.urandom(6).hex()}")
        os.mkdir(self.dir, 0o700)
        try:
            for sub in ("upper", "work", "merged", "bundle"):
                os.mkdir(self.path(sub), 0o755)
            self.rootfs = self.mount(self.diff_ids, "merged", self.path("upper"), self.path("work"))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def mount(self, diff_ids: list[str], name: str, upper: str, work: str) -> str:
        """Overlay ``diff_ids`` under ``upper`` at ``<dir>/<name>``; no layers → ``upper`` itself."""
        if not diff_ids:
            return upper
        from minibox.image.overlay import mount_overlay

        target = self.path(name)
        os.makedirs(target, 0o755, exist_ok=True)
        mount_overlay(self.store, _Layers(diff_ids), upper, work, target)
        self.mounted.append(target)
        return target

    def mount_source(self, diff_ids: list[str]) -> str:
        """Another stage's or image's filesystem, for COPY --from (its writes are discarded)."""
        for sub in ("src-upper", "src-work"):
            os.makedirs(self.path(sub), 0o755, exist_ok=True)
        return self.mount(diff_ids, "src", self.path("src-upper"), self.path("src-work"))

    def unmount(self) -> None:
        from minibox.image.overlay import unmount_overlay

        while self.mounted:
            unmount_overlay(self.mounted.pop())

    def commit(self, skip: set[str], always_skip: set[str] = frozenset()) -> dict | None:
        """Unmount and store ``upper`` as a layer; None when the step changed nothing."""
        from minibox.image.layerdiff import write_layer

        self.unmount()
        tar = self.path("layer.tar")
        if write_layer(self.path("upper"), tar, skip, always_skip) == 0:
            return None
        with open(tar, "rb") as f:
            return self.store.add_layer(f, label="build step")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.unmount()
        finally:
            if self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
