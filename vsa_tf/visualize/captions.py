"""Caption figures: generated captions under test images (paper Fig. 6), region captions on boxes (Fig. 7).

Matplotlib with the Agg backend (no display); every figure is written to a temporary file in the
destination folder and renamed, so a reader never sees half a PNG.
"""

import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from vsa_tf.files import atomic_save_figure  # noqa: E402

BOX_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")


def _save_atomically(figure, out_path, dpi=110):
    try:
        return atomic_save_figure(figure, out_path, dpi=dpi, format="png", bbox_inches="tight")
    finally:
        plt.close(figure)


def _load_image(path):
    if not os.path.isfile(path):
        raise ValueError(f"Image file not found: {path}")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def plot_image_captions(items, out_path, columns=4, width=40):
    """A grid of images with their generated caption (and optionally a reference) underneath (Fig. 6).

    Args:
        items: list of {"image": path, "caption": str, "reference"?: str}.
        out_path: PNG file to write.
        columns: images per row.
        width: characters per caption line.
    Returns:
        out_path.
    """
    if not items:
        raise ValueError("plot_image_captions needs at least one item, received an empty list")
    columns = max(1, min(int(columns), len(items)))
    rows = (len(items) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.9 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, item in zip(axes.ravel(), items):
        axis.imshow(_load_image(item["image"]))
        text = "\n".join(textwrap.wrap(item.get("caption") or "(empty)", width))
        if item.get("reference"):
            text += "\n" + "\n".join(textwrap.wrap("ref: " + item["reference"], width))
        axis.set_title(os.path.basename(item["image"]), fontsize=8, color="0.4")
        axis.text(0.5, -0.04, text, transform=axis.transAxes, ha="center", va="top", fontsize=9, wrap=True)
    figure.tight_layout()
    return _save_atomically(figure, out_path)


def plot_region_captions(image_path, regions, out_path, title=None):
    """One image with each region's box and its caption drawn on it (Fig. 7).

    Args:
        image_path: the image file.
        regions: list of {"box": [x0, y0, x1, y1] pixels of the original image, "caption": str}.
        out_path: PNG file to write.
        title: optional figure title (e.g. the full-frame caption).
    Returns:
        out_path.
    """
    image = _load_image(image_path)
    height, width = image.shape[:2]
    scale = 6.0 / max(height, width)
    figure, axis = plt.subplots(figsize=(max(width * scale, 3.0), max(height * scale, 3.0)))
    axis.imshow(image)
    axis.axis("off")
    for index, region in enumerate(regions):
        box = region.get("box")
        if box is None or len(box) != 4:
            raise ValueError(f"region {index}: `box` must be [x0, y0, x1, y1], received {box!r}")
        x0, y0, x1, y1 = (float(value) for value in box)
        color = BOX_COLORS[index % len(BOX_COLORS)]
        axis.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=2))
        axis.text(
            x0, max(y0 - 1, 0), region.get("caption") or "(empty)", color="white", fontsize=8, va="bottom",
            bbox={"facecolor": color, "alpha": 0.85, "pad": 1.5, "edgecolor": "none"},
        )
    if title:
        axis.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=9)
    return _save_atomically(figure, out_path)
