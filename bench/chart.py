"""The headline chart: one bar per ratio (minibox / peer) against its target.

matplotlib draws it when installed (it is imported here only, never by
minibox itself). Without matplotlib a plain PNG is still written with zlib —
bars and target ticks, no text — so ``make bench`` never fails for want of a
plotting library; the table and results.json carry the labels.
"""

import struct
import zlib


def write(headline: list[dict], path: str) -> str:
    """Draw ``headline`` (Results.headline) to ``path``; returns which renderer was used."""
    rows = [h for h in headline if h.get("ratio") is not None]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _write_plain_png(rows, path)
        return "zlib (matplotlib not installed: bars without labels)"
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * max(len(rows), 1)))
    labels = [h["label"] for h in rows]
    values = [h["ratio"] for h in rows]
    colors = ["#3a7d44" if h["met"] or h["met"] is None else "#c0392b" for h in rows]
    y = range(len(rows))
    ax.barh(list(y), values, color=colors)
    for i, h in enumerate(rows):
        if h.get("target") is not None:
            ax.plot([h["target"]] * 2, [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.text(h["ratio"], i, f" {h['ratio']:.2f}", va="center", fontsize=8)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("ratio of medians, minibox / peer (lower is better; black tick = target)")
    ax.set_title("minibox vs runc / docker (interleaved rounds, one run)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return "matplotlib"


def _write_plain_png(rows: list[dict], path: str, width: int = 600, bar_h: int = 24) -> None:
    height = max(1, len(rows)) * (bar_h + 8) + 8
    vmax = max([1.0] + [max(h["ratio"], h.get("target") or 0) for h in rows]) * 1.1
    img = [bytearray(b"\xff" * (width * 3)) for _ in range(height)]

    def px(x, y, rgb):
        if 0 <= x < width and 0 <= y < height:
            img[y][3 * x:3 * x + 3] = bytes(rgb)

    one = int(width * 1.0 / vmax)
    for y in range(height):
        px(one, y, (150, 150, 150))
    for i, h in enumerate(rows):
        top = 8 + i * (bar_h + 8)
        color = (58, 125, 68) if h.get("met") in (True, None) else (192, 57, 43)
        for y in range(top, top + bar_h):
            for x in range(int(width * h["ratio"] / vmax)):
                px(x, y, color)
        if h.get("target") is not None:
            tx = int(width * h["target"] / vmax)
            for y in range(top - 3, top + bar_h + 3):
                px(tx, y, (0, 0, 0))
                px(tx + 1, y, (0, 0, 0))
    raw = b"".join(b"\x00" + bytes(row) for row in img)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)
