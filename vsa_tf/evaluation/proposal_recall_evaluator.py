"""A Keras callback that adds the validation proposal recall to the epoch logs (the proposal job's monitor)."""

import keras
import numpy as np

from vsa_tf.evaluation.proposals import DEFAULT_IOU_THRESHOLD, box_iou


class ProposalRecallEvaluator(keras.callbacks.Callback):
    """Recall of the validation boxes by the model's proposals, each epoch, as `val_recall` (percent).

    A box is found when one of its image's proposals (`model.propose`: NMS, top `max_proposals`) has
    IoU >= `iou_threshold` with it. The val loss of the sampled anchors is a poor guide to this: on
    Flickr8k the loss turned up after 2-6 epochs while the recall of the kept proposals still rose, so
    the proposal job keeps the weights of the best `val_recall` instead (docs/results.md).

    Args:
        validation_batches: batched dicts with `feature_map` (or `images`), `boxes` float [B, K, 4] pixel
            "xyxy" of the resized image and `box_mask` bool [B, K].
        iou_threshold: least IoU of a found box.

    Example:
    >>> from vsa_tf.models.proposal_model import ProposalModel
    >>> model = ProposalModel(image_size=(32, 32), feature_stride=8, anchor_sizes=(8, 16), filters=4)
    >>> batch = {"feature_map": np.zeros((1, 4, 4, 6), "float32"),
    ...          "boxes": np.array([[[0.0, 0.0, 32.0, 32.0]]], "float32"), "box_mask": np.array([[True]])}
    >>> evaluator = ProposalRecallEvaluator([batch])
    >>> evaluator.set_model(model)
    >>> 0.0 <= evaluator.recall() <= 100.0
    True

    Reference: Ren et al., "Faster R-CNN", NeurIPS 2015, section 4.1 (recall of the top-N proposals at IoU 0.5).
    """

    def __init__(self, validation_batches, iou_threshold=DEFAULT_IOU_THRESHOLD):
        super().__init__()
        self.validation_batches = validation_batches
        self.iou_threshold = float(iou_threshold)

    def recall(self):
        """Percent of the masked validation boxes found by the current model's proposals."""
        found = total = 0
        for batch in self.validation_batches:
            inputs = {key: batch[key] for key in ("feature_map", "images") if key in batch}
            proposals, _, counts = self.model.propose(inputs)
            proposals, counts = np.asarray(proposals), np.asarray(counts)
            boxes, mask = np.asarray(batch["boxes"]), np.asarray(batch["box_mask"])
            for row in range(len(boxes)):
                truth = boxes[row][mask[row]]
                total += len(truth)
                if len(truth) and counts[row]:
                    found += int(np.sum(box_iou(truth, proposals[row, : counts[row]]).max(axis=1) >= self.iou_threshold))
        return 100.0 * found / max(total, 1)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["val_recall"] = self.recall()
