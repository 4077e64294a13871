"""Named and anonymous volumes: plain directories under ``<root>/volumes/<name>/_data``.

A new, empty named volume mounted over a directory of the image is first
filled with that directory's content, as docker does ("copy-up"), so
``-v data:/etc/app`` starts with the image's defaults.
"""

import json
import os
import shutil

from minibox.atomic import write_json
from minibox.errors import Conflict, NotFound


def volume_dir(root: str, name: str) -> str:
    return os.path.join(root, "volumes", name)


def ensure(root: str, name: str, anonymous: bool = False) -> tuple[str, bool]:
    """Return (data dir, created now) for volume ``name``."""
    vdir = volume_dir(root, name)
    data = os.path.join(vdir, "_data")
    try:
        os.mkdir(vdir, 0o700)
    except FileExistsError:
        return data, False
    os.mkdir(data, 0o755)
    from minibox.engine.timefmt import now_rfc3339

    write_json(os.path.join(vdir, "volume.json"),
               {"Name": name, "Driver": "local", "Mountpoint": data,
                "CreatedAt": now_rfc3339(), "Anonymous": anonymous})
    return data, True


def copy_up(image_dir: str, data: str) -> None:
    """Seed an empty volume with the image's content at the mount point."""
    if not os.path.isdir(image_dir) or os.path.islink(image_dir) or os.listdir(data):
        return
    for entry in os.listdir(image_dir):
        src = os.path.join(image_dir, entry)
        dst = os.path.join(data, entry)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)
    st = os.stat(image_dir)
    os.chmod(data, st.st_mode & 0o7777)
    os.chown(data, st.st_uid, st.st_gid)


def list_volumes(root: str) -> list[dict]:
    base = os.path.join(root, "volumes")
    result = []
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        try:
            with open(os.path.join(base, name, "volume.json"), "rb") as f:
                result.append(json.load(f))
        except (OSError, ValueError):
            continue
    return result


def users(root: str, name: str) -> list[str]:
    from minibox.engine import records

    return [rec["id"] for rec in records.load_all(root)
            if any(m.get("kind") == "volume" and m.get("source") == name for m in rec.get("mounts", []))]


def remove(root: str, name: str, force: bool = False) -> None:
    vdir = volume_dir(root, name)
    if not os.path.isdir(vdir):
        raise NotFound(f"get {name}: no such volume")
    in_use = users(root, name)
    if in_use and not force:
        raise Conflict(f"remove {name}: volume is in use - [{', '.join(in_use)}]")
    shutil.rmtree(vdir)
