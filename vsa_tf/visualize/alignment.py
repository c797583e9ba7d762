"""A figure like Figure 5 of Karpathy & Fei-Fei 2015: an image with its region boxes, and the sentence
below it with each word coloured by the region it is aligned to and that word's alignment score."""

import numpy as np

from vsa_tf.files import atomic_save_figure

# Distinct, colour-blind-friendly colours (Okabe-Ito, then Tableau), cycled past 14 regions.
REGION_COLORS = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
    "#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#17BECF",
)


def region_color(region):
    return REGION_COLORS[int(region) % len(REGION_COLORS)]


def plot_alignment(image, boxes_pixels, words, assignments, scores, out_path, title=None, dpi=120):
    """Draws the alignment of one sentence to an image's regions and saves it atomically.

    Args:
        image: np.uint8 array [H, W, 3].
        boxes_pixels: array [M, 4] of pixel [x0, y0, x1, y1], row 0 the whole image.
        words: list of N tokens.
        assignments: int array [N] of region indices (from `vsa_tf.align.mrf.mrf_align`).
        scores: array [N] of each word's score with its region, or [N, M] word-region scores
            v_tᵀ s_j (the assigned region's score is shown).
        out_path: where to save the figure; the format follows the extension (.png, .pdf, .svg).
        title: optional title above the image.
        dpi: resolution of raster formats.

    Returns:
        `out_path`.

    Only regions that some word is aligned to are drawn; the whole image (region 0) is drawn as a
    thick frame around the image.

    Reference:
        Karpathy & Fei-Fei, CVPR 2015, Figure 5.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.patches
    import matplotlib.pyplot as pyplot

    image, boxes, words, assignments, scores = _checked_inputs(image, boxes_pixels, words, assignments, scores)
    figure_width, image_inches, text_inches, line_inches = _layout_inches(image, words, scores, title)
    total_inches = image_inches + text_inches + (0.35 if title else 0.1)
    figure = pyplot.figure(figsize=(figure_width, total_inches), dpi=dpi)
    try:
        text_height = text_inches / total_inches  # figure fraction below the image
        line_height = line_inches / total_inches
        image_axes = figure.add_axes([0.02, text_height, 0.96, image_inches / total_inches])
        image_axes.imshow(image)
        image_axes.set_axis_off()
        if title:
            image_axes.set_title(title, fontsize=10)
        _draw_regions(image_axes, boxes, assignments)
        _draw_sentence(figure, words, assignments, scores, text_height, line_height)
        _save_atomically(figure, out_path)
    finally:
        pyplot.close(figure)
    return out_path


def _checked_inputs(image, boxes_pixels, words, assignments, scores):
    """(image, boxes [M, 4], words, assignments [N], scores [N]) as arrays; ValueError on a bad shape."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"`image` must be a uint8 array [H, W, 3], received dtype {image.dtype} shape {image.shape}")
    boxes = np.asarray(boxes_pixels, dtype=np.float64).reshape([-1, 4])
    words = [str(word) for word in words]
    assignments = np.asarray(assignments, dtype=np.int64).reshape([-1])
    scores = np.asarray(scores, dtype=np.float64)
    if len(assignments) != len(words):
        raise ValueError(f"`assignments` must have one entry per word ({len(words)}), received {len(assignments)}")
    if len(words) and (assignments.min() < 0 or assignments.max() >= len(boxes)):
        raise ValueError(
            f"`assignments` must index the {len(boxes)} boxes, received {assignments.tolist()}"
        )
    if scores.ndim == 2:
        if scores.shape != (len(words), len(boxes)):
            raise ValueError(
                f"`scores` [N, M] must have shape ({len(words)}, {len(boxes)}), received {scores.shape}"
            )
        scores = scores[np.arange(len(words)), assignments]
    if scores.shape != (len(words),):
        raise ValueError(f"`scores` must have shape ({len(words)},) or [N, M], received {scores.shape}")
    return image, boxes, words, assignments, scores


def _layout_inches(image, words, scores, title):
    """(figure width, image height, text area height, height of one line of labels), all in inches."""
    height, width = image.shape[:2]
    figure_width = 6.4  # inches
    image_inches = figure_width * 0.96 * height / width
    # Text area: ~0.085 inch per character at font size 10, 0.42 inch per line of labels.
    characters = sum(len(f"{word} ({score:.2f})") + 2 for word, score in zip(words, scores))
    line_inches = 0.42
    text_inches = line_inches * max(1, int(np.ceil(characters * 0.085 / (figure_width * 0.9)))) + 0.3
    return figure_width, image_inches, text_inches, line_inches


def _draw_regions(image_axes, boxes, assignments):
    """Draws each region some word is aligned to: region 0 as a thick frame, the others boxed and numbered."""
    import matplotlib.patches

    for region in sorted(set(assignments.tolist())):
        x0, y0, x1, y1 = boxes[region]
        whole = region == 0
        image_axes.add_patch(
            matplotlib.patches.Rectangle(
                (x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=region_color(region),
                linewidth=5.0 if whole else 2.5, clip_on=False,
            )
        )
        if not whole:
            image_axes.text(x0 + 2, y0 + 2, str(region), color="black", fontsize=8, va="top",
                            bbox={"facecolor": region_color(region), "edgecolor": "none", "pad": 1.0})


def _draw_sentence(figure, words, assignments, scores, text_height, line_height):
    """Sentence: words laid out left to right, wrapped at the figure width, each on its region's colour."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    figure_pixels = figure.bbox.width
    x, line = 0.02, 0
    for word, region, score in zip(words, assignments, scores):
        label = f"{word} ({score:.2f})"
        text = figure.text(
            x, text_height - 0.25 * line_height - line * line_height, label, fontsize=10, va="top",
            bbox={"facecolor": region_color(region), "edgecolor": "none", "alpha": 0.85, "pad": 2.0},
        )
        width_fraction = text.get_window_extent(renderer=renderer).width / figure_pixels + 0.012
        if x > 0.02 and x + width_fraction > 0.98:
            line += 1
            x = 0.02
            text.set_position((x, text_height - 0.25 * line_height - line * line_height))
        x += width_fraction


def _save_atomically(figure, out_path):
    atomic_save_figure(figure, out_path)
