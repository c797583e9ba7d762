"""A Keras callback that adds validation retrieval recalls (R@K) to the epoch logs."""

import math

import keras
import numpy as np

from vsa_tf.evaluation import retrieval
from vsa_tf.files import atomic_save_weights


class RetrievalEvaluator(keras.callbacks.Callback):
    """Computes validation R@K each epoch and adds `val_*` entries to the epoch logs.

    Adds `val_annotation_r1/r5/r10`, `val_search_r1/r5/r10` and `val_recall_sum` (the sum of the six
    recalls), so a best-checkpoint callback placed after it (e.g. `vsa_tf.training.fit_model` with
    `monitor="val_recall_sum", monitor_mode="max"`) keeps the best weights. With `weights_path` it also
    saves the best weights itself (atomically). The model needs `encode_images` and `encode_sentences`
    (`vsa_tf.evaluation.retrieval.score_dataset`).

    Args:
        image_dataset: batched image side of the validation images (`pipelines.images_dataset`).
        sentence_dataset: batched `tokens`/`token_mask` of the validation sentences.
        sentence_image: int array [S], each sentence's image index.
        weights_path: optional `.weights.h5` path for the best weights.
        every: evaluate every this many epochs.
    """

    def __init__(self, image_dataset, sentence_dataset, sentence_image, weights_path=None, every=1):
        super().__init__()
        self.image_dataset = image_dataset
        self.sentence_dataset = sentence_dataset
        self.sentence_image = np.asarray(sentence_image, dtype=np.int64)
        self.weights_path = weights_path
        self.every = max(int(every), 1)
        self.best = -math.inf
        self.last_metrics = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or (epoch + 1) % self.every:
            return
        scores = retrieval.score_dataset(self.model, self.image_dataset, self.sentence_dataset)
        metrics = retrieval.retrieval_metrics(scores, self.sentence_image)
        self.last_metrics = metrics
        recall_sum = 0.0
        for direction, prefix in (("image_annotation", "annotation"), ("image_search", "search")):
            for level in ("r1", "r5", "r10"):
                logs[f"val_{prefix}_{level}"] = float(metrics[direction][level])
                recall_sum += float(metrics[direction][level])
        logs["val_recall_sum"] = recall_sum
        if recall_sum > self.best:
            self.best = recall_sum
            if self.weights_path:
                atomic_save_weights(self.model, self.weights_path)
