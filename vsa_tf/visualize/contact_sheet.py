"""A contact sheet: a row of images with captions, saved as a PNG (matplotlib Agg, atomic write)."""

import os

import numpy as np

from vsa_tf.files import atomic_save_figure


def _load(image):
    if isinstance(image, str):
        from PIL import Image

        if not os.path.isfile(image):
            raise ValueError(f"contact sheet image not found: {image}")
        with Image.open(image) as opened:
            return np.asarray(opened.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"contact sheet images must be [H, W, 3] arrays or paths, received shape {array.shape}")
    return array.astype(np.uint8) if array.dtype != np.uint8 and array.max() > 1.0 else array


def save_contact_sheet(path, images, titles=None, columns=6, tile_inches=2.0, suptitle=None):
    """Draws `images` (paths or [H, W, 3] arrays) in a grid with `titles` and saves a PNG atomically.

    Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    images = list(images)
    if not images:
        raise ValueError("save_contact_sheet needs at least one image")
    titles = list(titles) if titles is not None else [""] * len(images)
    if len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    figure, axes = pyplot.subplots(rows, columns, figsize=(tile_inches * columns, tile_inches * rows + 0.4), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, image, title in zip(axes.ravel(), images, titles):
        axis.imshow(_load(image))
        axis.set_title(title, fontsize=8)
    if suptitle:
        figure.suptitle(suptitle, fontsize=10)
    figure.tight_layout()
    try:
        return atomic_save_figure(figure, path, format="png", dpi=80)
    finally:
        pyplot.close(figure)
