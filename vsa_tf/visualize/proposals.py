"""Region proposals drawn on images: the top proposals, best first, beside the true object boxes.

Matplotlib with the Agg backend (no display). The figure has a fixed size (no tight bounding box), so
its PNG is `columns * panel_size[0] * dpi` by `rows * panel_size[1] * dpi` pixels; it is written to a
temporary file in the destination folder and renamed, so a reader never sees half a PNG.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from vsa_tf.files import atomic_save_figure  # noqa: E402

PROPOSAL_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")
TRUTH_COLOR = "white"


def plot_proposals(items, out_path, top=5, columns=3, panel_size=(3.2, 2.4), dpi=100):
    """A grid of images, each with its top proposals (numbered by rank, with scores) and true boxes dashed.

    Args:
        items: list of {"image": path, "boxes": [[x0, y0, x1, y1], ...] pixels of the image file, best
            first, "scores"?: one per box, "truth"?: true object boxes (drawn dashed), "title"?: str}.
        out_path: PNG file to write.
        top: proposals drawn per image (the best `top`).
        columns: images per row.
        panel_size: (width, height) of one image's panel in inches.
        dpi: pixels per inch of the PNG.
    Returns:
        out_path.
    """
    if not items:
        raise ValueError("plot_proposals needs at least one item, received an empty list")
    if int(top) < 1:
        raise ValueError(f"plot_proposals: top must be >= 1, received {top!r}")
    for index, item in enumerate(items):
        for key in ("boxes", "truth"):
            for box in item.get(key) or ():
                if len(box) != 4:
                    raise ValueError(f"item {index}: every box of `{key}` must be [x0, y0, x1, y1], received {box!r}")
        scores = item.get("scores")
        if scores is not None and len(scores) != len(item.get("boxes") or ()):
            raise ValueError(f"item {index}: {len(scores)} scores for {len(item.get('boxes') or ())} boxes")
    columns = max(1, min(int(columns), len(items)))
    rows = (len(items) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(panel_size[0] * columns, panel_size[1] * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, item in zip(axes.ravel(), items):
        _draw_panel(axis, item, int(top))
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.04, hspace=0.15)
    return _save_atomically(figure, out_path, dpi)


def _draw_panel(axis, item, top):
    """One image: true boxes dashed, then the proposals from the worst drawn to the best (best on top)."""
    axis.imshow(_load_image(item["image"]))
    for box in item.get("truth") or ():
        x0, y0, x1, y1 = (float(value) for value in box)
        axis.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=TRUTH_COLOR, linewidth=1.5, linestyle="--"))
    boxes = list(item.get("boxes") or ())[:top]
    scores = list(item.get("scores") or ())[:top]
    for rank in reversed(range(len(boxes))):
        x0, y0, x1, y1 = (float(value) for value in boxes[rank])
        color = PROPOSAL_COLORS[rank % len(PROPOSAL_COLORS)]
        axis.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=2.0 if rank == 0 else 1.2))
        label = f"{rank + 1}" + (f" {scores[rank]:.2f}" if scores else "")
        axis.text(x0, y0, label, color="white", fontsize=6, va="top", ha="left",
                  bbox={"facecolor": color, "alpha": 0.8, "pad": 0.8, "edgecolor": "none"})
    axis.set_title(item.get("title") or os.path.basename(item["image"]), fontsize=8, color="0.3")


def _load_image(path):
    if not os.path.isfile(path):
        raise ValueError(f"Image file not found: {path}")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _save_atomically(figure, out_path, dpi):
    try:
        return atomic_save_figure(figure, out_path, dpi=dpi, format="png")
    finally:
        plt.close(figure)
