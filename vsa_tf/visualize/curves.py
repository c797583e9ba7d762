"""Training curves from the `history.csv` files that `vsa_tf.training.fit_model` writes."""

import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vsa_tf.files import atomic_save_figure  # noqa: E402


def read_history(path):
    """history.csv -> {column: [float per epoch]} (empty cells skipped)."""
    if not os.path.exists(path):
        raise ValueError(f"History file not found: {path}")
    columns = {}
    with open(path, newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            for key, value in row.items():
                if key == "epoch" or value in ("", None):
                    continue
                try:
                    columns.setdefault(key, []).append(float(value))
                except ValueError:
                    continue
    return columns


def plot_training_curves(histories, out_path, keys=None):
    """One panel per run: every metric in `keys` (default: all) against the epoch.

    Args:
        histories: {run label: path of history.csv}.
        out_path: the PNG to write (atomically).
        keys: optional list of columns to draw.
    """
    if not histories:
        raise ValueError("plot_training_curves needs at least one history")
    figure, axes = plt.subplots(1, len(histories), figsize=(5 * len(histories), 3.6), squeeze=False)
    for axis, (label, path) in zip(axes[0], histories.items()):
        columns = read_history(path)
        for key, values in sorted(columns.items()):
            if keys is not None and key not in keys:
                continue
            if key == "learning_rate":
                continue
            axis.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=key)
        axis.set_title(label)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    try:
        return atomic_save_figure(figure, out_path, dpi=110, format="png")
    finally:
        plt.close(figure)
