"""Region captions of a photo's learned proposals, with no boxes file: `vsa-tf caption --proposals`."""

import os

import numpy as np

from vsa_tf.jobs import captioning, proposal_boxes, run_folder


def caption_proposals(caption_run, proposals_run, image_paths, beam=None, max_boxes=None, batch_size=16):
    """Region captions of each proposal box of image files (no boxes file): `vsa-tf caption --proposals`.

    Args:
        caption_run: a pixel-mode caption run (folder or `Run`).
        proposals_run: a proposals run (folder or `Run`).
        image_paths: image files.
        beam: beam size (default: the caption run's).
        max_boxes: caption only each image's first (best) `max_boxes` proposals (default: all, up to the
            proposals run's `max_proposals`).
        batch_size: images per proposal batch and regions per caption batch.

    Returns:
        `vsa_tf.jobs.captioning.caption_images`' list, one entry per proposal box ({"image", "box", "caption",
        "score"}) with its "proposal_score"; an image without proposals is captioned whole (score None).
    """
    if max_boxes is not None and max_boxes < 1:
        raise ValueError(f"max_boxes must be >= 1 (or None: every proposal), received {max_boxes}")
    caption_run = run_folder.as_run(caption_run, "caption")
    proposed = proposal_boxes.propose_image_files(proposals_run, image_paths, batch_size=batch_size)
    boxes, proposal_of = {}, {}
    for path, entry in proposed.items():
        kept = slice(None, max_boxes)
        for box, score in zip(entry["boxes"][kept], entry["scores"][kept]):
            boxes.setdefault(path, []).append(box)
            proposal_of[(path, _float32_key(box))] = (box, score)
    results = captioning.caption_images(caption_run, image_paths, boxes=boxes, beam=beam, batch_size=batch_size)
    for result in results:
        # caption_images returns the boxes through float32: find the proposal (and its rounded box) again.
        box = None if result["box"] is None else _float32_key(result["box"])
        result["box"], result["proposal_score"] = proposal_of.get((os.fspath(result["image"]), box), (result["box"], None))
    return results


def _float32_key(box):
    return tuple(float(value) for value in np.asarray(box, np.float32))
