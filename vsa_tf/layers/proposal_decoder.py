"""Proposals from an RPN's outputs: decode the deltas, clip to the image, non-maximum suppression, top K."""

import keras
import tensorflow as tf
from keras import ops
from keras.utils import bounding_boxes


@keras.saving.register_keras_serializable(package="vsa_tf")
class ProposalDecoder(keras.layers.Layer):
    """The best `max_proposals` boxes of each image after NMS, best first, padded with zero rows.

    The deltas are decoded against the anchors (`keras.utils.bounding_boxes.decode_deltas_to_boxes`,
    the inverse of the encoding `ProposalTargets` trains on), clipped to the image, boxes narrower or
    shorter than `min_size` pixels dropped, the `pre_nms_top` highest objectness scores kept, and greedy
    NMS at `iou_threshold` applied per image with `tf.image.combined_non_max_suppression` (keras.ops has
    no NMS; this op is a stock TensorFlow kernel, so the exported graphs keep serving on TF Serving).

    Args:
        max_proposals: boxes returned per image (the detections the alignment model pools: 19).
        iou_threshold: NMS overlap above which the lower-scored box is dropped (the paper: 0.7).
        pre_nms_top: highest-scored anchors that enter NMS.
        min_size: least width and height of a kept box, in pixels.
        **kwargs: base layer arguments.

    Call arguments:
        anchors: float [A, 4] pixel "xyxy" anchors, in the order of the head's outputs.
        logits: float [B, A] objectness logits.
        deltas: float [B, A, 4] box deltas.
        image_size: (height, width) in pixels of the images the anchors were laid on.

    Returns:
        (boxes float [B, K, 4] pixel "xyxy", scores float [B, K] (sigmoid of the logit), count int [B]:
        the valid rows, the rest zero).

    Example:
    >>> anchors = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], "float32")
    >>> boxes, scores, count = ProposalDecoder(max_proposals=3, iou_threshold=0.5)(
    ...     anchors, np.array([[2.0, 1.0, 0.0]], "float32"), np.zeros((1, 3, 4), "float32"), image_size=(32, 32))
    >>> count.numpy().tolist(), boxes.numpy()[0, :2].tolist()
    ([2], [[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])

    Reference: Ren et al., "Faster R-CNN", NeurIPS 2015, section 3.3 (NMS at IoU 0.7 on the proposal
    regions, top-N ranked proposals).
    """

    def __init__(self, max_proposals=19, iou_threshold=0.7, pre_nms_top=1000, min_size=1.0, **kwargs):
        super().__init__(**kwargs)
        if int(max_proposals) < 1 or int(pre_nms_top) < 1:
            raise ValueError(f"max_proposals and pre_nms_top must be >= 1, received {max_proposals!r} and {pre_nms_top!r}")
        if not 0.0 < float(iou_threshold) <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], received {iou_threshold!r}")
        if float(min_size) < 0:
            raise ValueError(f"min_size must be >= 0, received {min_size!r}")
        self.max_proposals = int(max_proposals)
        self.iou_threshold = float(iou_threshold)
        self.pre_nms_top = int(pre_nms_top)
        self.min_size = float(min_size)
        self.supports_masking = False

    def call(self, anchors, logits, deltas, image_size):
        height, width = float(image_size[0]), float(image_size[1])
        boxes = bounding_boxes.decode_deltas_to_boxes(
            anchors=ops.cast(anchors, "float32"), boxes_delta=ops.cast(deltas, "float32"), anchor_format="xyxy", box_format="xyxy"
        )
        limits = ops.convert_to_tensor([width, height, width, height], "float32")
        boxes = ops.clip(boxes, 0.0, limits)
        scores = ops.sigmoid(ops.cast(logits, "float32"))
        big_enough = ((boxes[..., 2] - boxes[..., 0]) >= self.min_size) & ((boxes[..., 3] - boxes[..., 1]) >= self.min_size)
        scores = ops.where(big_enough, scores, 0.0)
        top = min(self.pre_nms_top, int(anchors.shape[0])) if anchors.shape[0] is not None else self.pre_nms_top
        top_scores, top_index = ops.top_k(scores, k=top)
        top_boxes = ops.take_along_axis(boxes, top_index[..., None], axis=1)
        # combined_non_max_suppression takes [y0, x0, y1, x1] boxes of shape [B, N, classes, 4].
        yxyx = ops.stack([top_boxes[..., 1], top_boxes[..., 0], top_boxes[..., 3], top_boxes[..., 2]], axis=-1)
        nms_boxes, nms_scores, _, count = tf.image.combined_non_max_suppression(
            yxyx[:, :, None, :], top_scores[..., None], max_output_size_per_class=self.max_proposals,
            max_total_size=self.max_proposals, iou_threshold=self.iou_threshold, score_threshold=1e-6, clip_boxes=False,
        )
        xyxy = ops.stack([nms_boxes[..., 1], nms_boxes[..., 0], nms_boxes[..., 3], nms_boxes[..., 2]], axis=-1)
        return xyxy, nms_scores, ops.cast(count, "int32")

    def compute_output_shape(self, anchors_shape, logits_shape, deltas_shape, image_size=None):
        batch = logits_shape[0]
        return (batch, self.max_proposals, 4), (batch, self.max_proposals), (batch,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_proposals": self.max_proposals,
                "iou_threshold": self.iou_threshold,
                "pre_nms_top": self.pre_nms_top,
                "min_size": self.min_size,
            }
        )
        return config
