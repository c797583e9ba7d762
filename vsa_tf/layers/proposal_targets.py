"""Training targets of a region proposal network: anchors matched to boxes by IoU, sampled, encoded as deltas."""

import keras
from keras import ops
from keras.utils import bounding_boxes

POSITIVE, NEGATIVE, IGNORED = 1.0, 0.0, -1.0


def pairwise_iou(anchors, boxes):
    """IoU of [A, 4] anchors (or [B, A, 4], one set per image) with [B, G, 4] boxes, pixel "xyxy" -> [B, A, G].

    Written with `keras.ops` rather than `keras.utils.bounding_boxes.compute_iou`, whose batched form
    expects both sides to have the same batch rank; broadcasting one anchor set over a batch is one line here.
    """
    anchors = ops.cast(anchors, "float32")
    anchors = anchors[None, :, None, :] if len(anchors.shape) == 2 else anchors[:, :, None, :]
    boxes = ops.cast(boxes, "float32")[:, None, :, :]
    width = ops.maximum(ops.minimum(anchors[..., 2], boxes[..., 2]) - ops.maximum(anchors[..., 0], boxes[..., 0]), 0.0)
    height = ops.maximum(ops.minimum(anchors[..., 3], boxes[..., 3]) - ops.maximum(anchors[..., 1], boxes[..., 1]), 0.0)
    intersection = width * height
    area_anchors = (anchors[..., 2] - anchors[..., 0]) * (anchors[..., 3] - anchors[..., 1])
    area_boxes = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    union = area_anchors + area_boxes - intersection
    return ops.where(union > 0, intersection / ops.maximum(union, 1e-9), 0.0)


@keras.saving.register_keras_serializable(package="vsa_tf")
class ProposalTargets(keras.layers.Layer):
    """Objectness labels and box-delta targets of every anchor, as the RPN of Faster R-CNN is trained.

    An anchor is positive when its IoU with some box is >= `positive_iou`, or when it is the anchor of
    highest IoU for a box (so every box has at least one positive); negative when its highest IoU is below
    `negative_iou`; ignored otherwise. Up to `samples_per_image` anchors per image are then kept, at most
    `positive_fraction` of them positive (drawn at random, the rest filled with random negatives); every
    other anchor is ignored. Box targets are the deltas (`keras.utils.bounding_boxes.encode_box_to_deltas`,
    centre-size parametrisation) from each anchor to its best box.

    Args:
        positive_iou: least IoU of a positive anchor (the paper: 0.7).
        negative_iou: IoU below which an anchor is negative (the paper: 0.3).
        samples_per_image: anchors kept per image (the paper: 256).
        positive_fraction: most positives among them (the paper: 0.5).
        seed: seed of the sampling.
        **kwargs: base layer arguments.

    Call arguments:
        anchors: float [A, 4] pixel "xyxy" anchors (e.g. keras-cv's `AnchorGenerator`, concatenated).
        boxes: float [B, G, 4] pixel "xyxy" boxes of each image, padded.
        box_mask: bool [B, G]; True for real boxes.

    Returns:
        (labels float [B, A]: 1 positive, 0 negative, -1 ignored; deltas float [B, A, 4] (zero where no
        box); matched box index int [B, A]).

    Example:
    >>> anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 30, 30]], "float32")
    >>> boxes = np.array([[[0, 0, 10, 11]]], "float32")
    >>> labels, deltas, matched = ProposalTargets(samples_per_image=3)(anchors, boxes, np.ones((1, 1), bool))
    >>> labels.numpy().tolist()
    [[1.0, 0.0, 0.0]]

    Reference: Ren et al., "Faster R-CNN: Towards Real-Time Object Detection with Region Proposal
    Networks", NeurIPS 2015, section 3.1.2 (anchor labels, eq. 1 loss, eq. 2 parametrisation) and 3.1.3.
    """

    def __init__(self, positive_iou=0.7, negative_iou=0.3, samples_per_image=256, positive_fraction=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(negative_iou) <= float(positive_iou) <= 1.0:
            raise ValueError(
                f"need 0 < negative_iou <= positive_iou <= 1, received negative_iou={negative_iou!r}, positive_iou={positive_iou!r}"
            )
        if int(samples_per_image) < 1:
            raise ValueError(f"samples_per_image must be >= 1, received {samples_per_image!r}")
        if not 0.0 < float(positive_fraction) <= 1.0:
            raise ValueError(f"positive_fraction must be in (0, 1], received {positive_fraction!r}")
        self.positive_iou = float(positive_iou)
        self.negative_iou = float(negative_iou)
        self.samples_per_image = int(samples_per_image)
        self.positive_fraction = float(positive_fraction)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False

    def call(self, anchors, boxes, box_mask):
        box_mask = ops.cast(box_mask, "bool")
        iou = ops.where(box_mask[:, None, :], pairwise_iou(anchors, boxes), -1.0)  # [B, A, G]
        best_iou = ops.max(iou, axis=2)  # [B, A]
        matched = ops.argmax(iou, axis=2)  # [B, A]
        best_of_box = ops.max(iou, axis=1, keepdims=True)  # [B, 1, G]
        is_best_anchor = ops.any((iou >= best_of_box) & (best_of_box > 0) & box_mask[:, None, :], axis=2)
        positive = (best_iou >= self.positive_iou) | is_best_anchor
        negative = (best_iou < self.negative_iou) & ops.logical_not(positive)

        most_positives = int(round(self.samples_per_image * self.positive_fraction))
        kept_positive = positive & (self._random_rank(positive) < most_positives)
        negative_quota = self.samples_per_image - ops.sum(ops.cast(kept_positive, "int32"), axis=1, keepdims=True)
        kept_negative = negative & (self._random_rank(negative) < negative_quota)
        labels = ops.where(kept_positive, POSITIVE, ops.where(kept_negative, NEGATIVE, IGNORED))

        matched_boxes = ops.take_along_axis(ops.cast(boxes, "float32"), matched[..., None], axis=1)  # [B, A, 4]
        deltas = bounding_boxes.encode_box_to_deltas(
            anchors=ops.cast(anchors, "float32"), boxes=matched_boxes, anchor_format="xyxy", box_format="xyxy"
        )
        deltas = ops.where((best_iou > 0)[..., None], deltas, 0.0)
        return labels, deltas, ops.cast(matched, "int32")

    def _random_rank(self, candidates):
        """int [B, A]: each candidate's rank in a random order of the image's candidates (others rank last)."""
        noise = keras.random.uniform(ops.shape(candidates), seed=self.seed_generator)
        scores = ops.where(candidates, noise, -1.0)
        order = ops.argsort(-scores, axis=1)
        return ops.argsort(order, axis=1)

    def compute_output_shape(self, anchors_shape, boxes_shape, box_mask_shape):
        batch, count = boxes_shape[0], anchors_shape[0]
        return (batch, count), (batch, count, 4), (batch, count)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "positive_iou": self.positive_iou,
                "negative_iou": self.negative_iou,
                "samples_per_image": self.samples_per_image,
                "positive_fraction": self.positive_fraction,
                "seed": self.seed,
            }
        )
        return config
