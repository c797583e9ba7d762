"""The second stage of a two-stage detector: each proposal's box regressed from its RoI features."""

import keras
from keras import ops

from vsa_tf.layers.roi_pooling import RoIAlign


@keras.saving.register_keras_serializable(package="vsa_tf")
class BoxRefinementHead(keras.layers.Layer):
    """Box deltas of each proposal from RoIAlign features of the box and of its surroundings (Fast R-CNN).

    The feature map is reduced to `filters` channels (1 x 1 convolution, ReLU); each box and the box
    enlarged `context_scale` times about its centre are RoIAligned to `pool_size x pool_size` bins and
    flattened, joined with the box's normalised corners and log area, and two ReLU layers of `hidden`
    units give four deltas in the `center_yxhw` encoding of `keras.utils.bounding_boxes`, scaled by
    `BOX_VARIANCE` (`refined_boxes` decodes them). The output layer starts at zero, so an untrained head
    leaves the boxes as they are. The surroundings let a box that covers only part of an object grow
    towards the rest of it, which the box's own bins cannot see.

    Args:
        filters: channels of the reduced feature map.
        pool_size: RoIAlign bins per side.
        hidden: units of the two hidden layers.
        context_scale: side of the context box over the box's (>= 1).
        **kwargs: base layer arguments.

    Call arguments:
        feature_map: float [B, h, w, C].
        boxes: float [B, K, 4] normalised `[y0, x0, y1, x1]` in [0, 1] ("rel_yxyx", as `RoIAlign`).
        box_mask: optional bool [B, K]; padding rows get zero deltas.

    Returns:
        float [B, K, 4] deltas (dy, dx, dh, dw before the variance scaling).

    Example:
    >>> head = BoxRefinementHead(filters=4, pool_size=2, hidden=8)
    >>> deltas = head(np.ones((1, 4, 4, 6), "float32"), np.array([[[0.1, 0.1, 0.6, 0.5]]], "float32"))
    >>> tuple(deltas.shape), float(np.abs(deltas).max())
    ((1, 1, 4), 0.0)

    Reference: Girshick, "Fast R-CNN", ICCV 2015 (per-RoI box regression, its smooth-L1 loss and
    the (0.1, 0.1, 0.2, 0.2) delta scaling); Ren et al., "Faster R-CNN", NeurIPS 2015, section 3.2 (the
    second stage on the RPN's proposals). Karpathy & Fei-Fei 2015 align words to R-CNN detections,
    whose boxes are regressed this way.
    """

    BOX_VARIANCE = (0.1, 0.1, 0.2, 0.2)

    def __init__(self, filters=128, pool_size=7, hidden=256, context_scale=2.0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("filters", filters), ("pool_size", pool_size), ("hidden", hidden)):
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, received {value!r}")
        if not float(context_scale) >= 1.0:
            raise ValueError(f"context_scale must be a number >= 1, received {context_scale!r}")
        self.filters = int(filters)
        self.pool_size = int(pool_size)
        self.hidden = int(hidden)
        self.context_scale = float(context_scale)
        # Training decodes the proposals (NMS) and RoIAligns them (CropAndResize): XLA compiles neither, so a
        # model holding this head compiles without it (Keras' jit_compile="auto" reads this flag).
        self.supports_jit = False
        self.reduce = keras.layers.Conv2D(self.filters, 1, activation="relu", name="reduce")
        self.roi_align = RoIAlign(self.pool_size, pooling="flatten", name="roi_align")
        self.hidden_1 = keras.layers.Dense(self.hidden, activation="relu", name="hidden_1")
        self.hidden_2 = keras.layers.Dense(self.hidden, activation="relu", name="hidden_2")
        self.deltas = keras.layers.Dense(4, kernel_initializer="zeros", name="deltas")

    def build(self, feature_map_shape, boxes_shape, box_mask_shape=None):
        self.reduce.build(feature_map_shape)
        pooled = self.pool_size * self.pool_size * self.filters
        self.hidden_1.build((None, None, 2 * pooled + 5))
        self.hidden_2.build((None, None, self.hidden))
        self.deltas.build((None, None, self.hidden))
        self.built = True

    def context_boxes(self, boxes):
        """rel_yxyx boxes [..., 4] enlarged `context_scale` times about their centres, clipped to the image."""
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2.0
        half = (boxes[..., 2:] - boxes[..., :2]) * (self.context_scale / 2.0)
        return ops.clip(ops.concatenate([centre - half, centre + half], axis=-1), 0.0, 1.0)

    def call(self, feature_map, boxes, box_mask=None):
        boxes = ops.cast(boxes, "float32")
        reduced = self.reduce(feature_map)
        own = self.roi_align(reduced, boxes)
        context = self.roi_align(reduced, self.context_boxes(boxes))
        size = (boxes[..., 2:3] - boxes[..., 0:1]) * (boxes[..., 3:4] - boxes[..., 1:2])
        geometry = ops.concatenate([boxes, ops.log(ops.maximum(size, 1e-6))], axis=-1)
        hidden = self.hidden_2(self.hidden_1(ops.concatenate([own, context, ops.cast(geometry, own.dtype)], axis=-1)))
        deltas = self.deltas(hidden)
        if box_mask is not None:
            deltas = deltas * ops.cast(box_mask, deltas.dtype)[..., None]
        return deltas

    def compute_output_shape(self, feature_map_shape, boxes_shape, box_mask_shape=None):
        return (boxes_shape[0], boxes_shape[1], 4)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "pool_size": self.pool_size, "hidden": self.hidden, "context_scale": self.context_scale})
        return config


def refined_boxes(boxes, deltas, image_size):
    """Boxes moved by `BoxRefinementHead` deltas (the inverse of Keras' `center_yxhw` encoding), clipped to the image.

    Args:
        boxes: float [B, K, 4] pixel "xyxy".
        deltas: float [B, K, 4], the head's output.
        image_size: (height, width) in pixels.

    Returns:
        float32 [B, K, 4] pixel "xyxy" inside [0, width] x [0, height].

    Example:
    >>> refined_boxes(np.array([[[2.0, 2.0, 10.0, 12.0]]]), np.zeros((1, 1, 4)), (32, 32)).numpy().tolist()
    [[[2.0, 2.0, 10.0, 12.0]]]
    """
    from keras.utils import bounding_boxes

    moved = bounding_boxes.decode_deltas_to_boxes(
        anchors=ops.cast(boxes, "float32"), boxes_delta=ops.cast(deltas, "float32"), anchor_format="xyxy", box_format="xyxy",
        variance=BoxRefinementHead.BOX_VARIANCE,
    )
    height, width = float(image_size[0]), float(image_size[1])
    return ops.minimum(ops.maximum(moved, 0.0), ops.convert_to_tensor([width, height, width, height], "float32"))
