"""Shared by the synthetic world's tests: reading a generated world back."""

import json
import os

# The world of the shared `world` fixture: default image sizes, every val/test scene holds out a pair.
SPLIT_COUNTS = (8, 2, 2)
WORLD_SETTINGS = {"num_images": 12, "seed": 3, "split_counts": SPLIT_COUNTS, "heldout_share": 1.0}


def read_world(folder):
    """(dataset, truth, boxes) of a world folder."""
    values = []
    for name in ("dataset.json", "truth.json", "boxes.json"):
        with open(os.path.join(folder, name), encoding="utf-8") as stream:
            values.append(json.load(stream))
    return tuple(values)

