"""Collapse detection for captioners: how many different captions a fixed sample of images gets."""

import sys

import keras
import numpy as np

from vsa_tf.data.text import END_ID, PAD_ID
from vsa_tf.samplers import GreedySampler


def distinct_token_fraction(tokens, end_token_id=END_ID, pad_token_id=PAD_ID):
    """Fraction of distinct captions among int token rows [N, L] (each cut at its first END).

    A captioner that ignores its image writes one sentence for every image: the fraction is then 1 / N.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise ValueError(f"tokens must be a non-empty [N, L] array, received shape {tokens.shape}")
    captions = set()
    for row in tokens.tolist():
        words = []
        for token in row:
            if token in (end_token_id, pad_token_id):
                break
            words.append(token)
        captions.add(tuple(words))
    return len(captions) / tokens.shape[0]


class DistinctCaptionsMonitor(keras.callbacks.Callback):
    """Decodes a fixed sample of images greedily after each epoch and logs the fraction of distinct captions.

    A captioner whose captions do not depend on the image (the image bias too weak to learn through a
    from-scratch CNN, for instance) writes the same sentence for every image; BLEU and CIDEr of such a
    model can still look plausible. The fraction is logged as `distinct_fraction` (into the epoch's
    `logs`, so it lands in history.csv) and a one-line warning goes to `stream` when it falls below
    `threshold`.

    Args:
        image_batch: a batch dict of the image side (`images`/`boxes`/`region_mask` or
            `region_features`) of the sample; the same images every epoch.
        max_length: most tokens generated per caption.
        threshold: warn when the distinct fraction is below this value (0 disables the warning).
        stream: where warnings are written (default: `sys.stderr`).

    Example:
    >>> monitor = DistinctCaptionsMonitor({"region_features": np.ones((4, 1, 6), "float32")}, max_length=5)
    >>> monitor.threshold
    0.5

    Reference: the "distinct captions" diagnostic of image-captioning evaluations (e.g. Devlin et al.,
    "Language Models for Image Captioning: The Quirks and What Works", ACL 2015, section 5).
    """

    def __init__(self, image_batch, max_length=16, threshold=0.5, stream=None):
        super().__init__()
        if not isinstance(image_batch, dict) or not image_batch:
            raise ValueError(f"image_batch must be a non-empty batch dict, received {type(image_batch).__name__}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], received {threshold!r}")
        self.image_batch = image_batch
        self.max_length = int(max_length)
        self.threshold = float(threshold)
        self.stream = stream
        self.sampler = GreedySampler(max_length=self.max_length)
        self.fractions = []

    def on_epoch_end(self, epoch, logs=None):
        tokens = self.model.generate(self.image_batch, self.sampler)[:, 0, :]  # (N, max_length), best beam
        fraction = distinct_token_fraction(tokens)
        self.fractions.append(fraction)
        if logs is not None:
            logs["distinct_fraction"] = fraction
        if fraction < self.threshold:
            count = len(tokens)
            print(
                f"warning: epoch {epoch + 1}: only {round(fraction * count)} distinct greedy captions for {count} val images "
                f"(fraction {fraction:.2f} < {self.threshold:.2f}): the captions barely depend on the image",
                file=self.stream or sys.stderr,
                flush=True,
            )
