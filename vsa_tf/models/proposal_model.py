"""Class-agnostic region proposal network (the RPN of Faster R-CNN) on a backbone's feature map, for `fit`."""

import keras
import numpy as np
from keras import ops
from keras.utils import bounding_boxes

from vsa_tf.layers.box_refinement_head import BoxRefinementHead, refined_boxes
from vsa_tf.layers.proposal_decoder import ProposalDecoder
from vsa_tf.layers.proposal_targets import IGNORED, POSITIVE, ProposalTargets, pairwise_iou
from vsa_tf.layers.region_proposal_head import RegionProposalHead


def anchor_boxes(image_size, stride, sizes=(16, 32, 64), aspect_ratios=(0.5, 1.0, 2.0)):
    """float32 [A, 4] pixel "xyxy" anchors of one feature map: keras-cv's `AnchorGenerator`, one level.

    `sizes` are the anchors' square sides in pixels (as `AnchorGenerator` scales of one base size) and
    `aspect_ratios` their height / width ratios; the order is the one `RegionProposalHead` outputs.
    """
    from keras_cv.layers import AnchorGenerator  # keras-cv is only needed where anchors are laid

    if int(stride) < 1 or not sizes or not aspect_ratios or min(sizes) <= 0 or min(aspect_ratios) <= 0:
        raise ValueError(f"anchors need a stride >= 1 and positive sizes and aspect ratios, received stride={stride!r}, "
                         f"sizes={tuple(sizes)!r}, aspect_ratios={tuple(aspect_ratios)!r}")
    base = float(sizes[0])
    generator = AnchorGenerator(
        bounding_box_format="xyxy", sizes=[base], scales=[float(size) / base for size in sizes],
        aspect_ratios=[float(ratio) for ratio in aspect_ratios], strides=[int(stride)], clip_boxes=False,
    )
    height, width = int(image_size[0]), int(image_size[1])
    return np.asarray(generator(image_shape=(height, width, 3))[0], dtype="float32")


@keras.saving.register_keras_serializable(package="vsa_tf")
class ProposalModel(keras.Model):
    """Objectness and box deltas for every anchor of a feature map; trained on any boxes file's boxes.

    The loss is eq. 1 of Ren et al.: binary cross-entropy of the objectness over the sampled anchors
    (`ProposalTargets`), plus `box_loss_weight` times the smooth-L1 (Huber, delta 1) loss of the
    deltas of the positive anchors, both averaged over the sampled anchors. Compile with an optimizer
    only (`model.compile(optimizer="adam")`).

    Args:
        image_size: (height, width) of the images the feature maps come from (the anchors are laid on it).
        feature_stride: pixels per feature-map cell (the backbone's output stride, or its `feature_layer`'s).
        upsampling: the head resizes the map by this factor first (`RegionProposalHead`), so the anchors
            are laid at stride `feature_stride / upsampling` (must divide it).
        anchor_sizes: square anchor sides in pixels.
        aspect_ratios: anchor height / width ratios.
        filters: channels of the head's 3 x 3 convolution.
        positive_iou, negative_iou, samples_per_image, positive_fraction: anchor labels (`ProposalTargets`).
        box_loss_weight: lambda of eq. 1.
        max_proposals, nms_iou_threshold, pre_nms_top, min_size: `ProposalDecoder` of `propose`.
        seed: seed of the anchor sampling.
        backbone: optional `vsa_tf.layers.backbones.Backbone` computing the feature map from `images`
            (its weights are saved with the model, so a run folder holds the whole proposal network).
        feature_layer: optional name of the backbone layer whose map the head reads (`Backbone.maps`,
            e.g. `Backbone.layer_at_stride(16)`); None: the backbone's output.
        refinement: optional second stage, a `BoxRefinementHead` (or its config): `propose` moves each
            decoded proposal by its deltas (Fast R-CNN box regression on the same feature map), and
            training adds its loss: smooth-L1 between its deltas and those to the proposal's
            best-overlapping box, over the proposals (decoded from the batch's outputs as `propose`
            does, without gradients to the RPN) whose IoU with it is >= `refinement_min_iou`.
        refinement_min_iou: least IoU of a proposal with a box for it to be regressed towards it.
        refinement_loss_weight: weight of the second stage's loss.

    Call arguments:
        inputs: dict with `feature_map` float [B, h, w, C], or `images` float [B, H, W, 3] in 0..255
            when the model has a backbone; training batches also hold `boxes` float [B, G, 4] pixel
            "xyxy" and `box_mask` bool [B, G].

    Returns:
        (objectness logits float [B, A], box deltas float [B, A, 4]).

    Example:
    >>> model = ProposalModel(image_size=(32, 32), feature_stride=8, anchor_sizes=(8, 16), filters=4)
    >>> logits, deltas = model({"feature_map": np.zeros((1, 4, 4, 6), "float32")})
    >>> tuple(logits.shape), model.anchors.shape
    ((1, 96), (96, 4))

    Reference: Ren et al., "Faster R-CNN", NeurIPS 2015, section 3.1 (anchors, eq. 1 loss, eq. 2
    parametrisation) and 3.3 (NMS, top-N proposals).
    """

    def __init__(
        self,
        image_size,
        feature_stride,
        anchor_sizes=(16, 32, 64),
        aspect_ratios=(0.5, 1.0, 2.0),
        filters=256,
        positive_iou=0.7,
        negative_iou=0.3,
        samples_per_image=256,
        positive_fraction=0.5,
        box_loss_weight=1.0,
        max_proposals=19,
        nms_iou_threshold=0.7,
        pre_nms_top=1000,
        min_size=1.0,
        seed=None,
        backbone=None,
        upsampling=1,
        feature_layer=None,
        refinement=None,
        refinement_min_iou=0.3,
        refinement_loss_weight=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        self.backbone = backbone
        if isinstance(refinement, dict):
            refinement = keras.saving.deserialize_keras_object(refinement)
        if refinement is not None and not isinstance(refinement, BoxRefinementHead):
            raise ValueError(f"refinement must be a BoxRefinementHead, its config or None, received {type(refinement).__name__}")
        self.refinement = refinement
        if not 0.0 < float(refinement_min_iou) <= 1.0:
            raise ValueError(f"refinement_min_iou must be in (0, 1], received {refinement_min_iou!r}")
        if not float(refinement_loss_weight) >= 0:
            raise ValueError(f"refinement_loss_weight must be >= 0, received {refinement_loss_weight!r}")
        self.refinement_min_iou = float(refinement_min_iou)
        self.refinement_loss_weight = float(refinement_loss_weight)
        self.feature_layer = feature_layer
        if feature_layer is not None and backbone is None:
            raise ValueError(f"feature_layer {feature_layer!r} names a backbone layer, but the model has no backbone")
        if float(box_loss_weight) < 0:
            raise ValueError(f"box_loss_weight must be >= 0, received {box_loss_weight!r}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.feature_stride = int(feature_stride)
        self.upsampling = int(upsampling)
        if self.upsampling < 1 or self.feature_stride % self.upsampling:
            raise ValueError(
                f"upsampling must be an integer >= 1 dividing feature_stride {self.feature_stride}, received {upsampling!r}"
            )
        self.anchor_sizes = tuple(float(size) for size in anchor_sizes)
        self.aspect_ratios = tuple(float(ratio) for ratio in aspect_ratios)
        self.filters = int(filters)
        self.positive_iou = float(positive_iou)
        self.negative_iou = float(negative_iou)
        self.samples_per_image = int(samples_per_image)
        self.positive_fraction = float(positive_fraction)
        self.box_loss_weight = float(box_loss_weight)
        self.max_proposals = int(max_proposals)
        self.nms_iou_threshold = float(nms_iou_threshold)
        self.pre_nms_top = int(pre_nms_top)
        self.min_size = float(min_size)
        self.seed = seed
        self.anchors = anchor_boxes(self.image_size, self.anchor_stride, self.anchor_sizes, self.aspect_ratios)
        self.head = RegionProposalHead(
            len(self.anchor_sizes) * len(self.aspect_ratios), filters=self.filters, upsampling=self.upsampling, name="head"
        )
        self.targets = ProposalTargets(positive_iou, negative_iou, samples_per_image, positive_fraction, seed=seed, name="targets")
        self.decoder = ProposalDecoder(max_proposals, nms_iou_threshold, pre_nms_top, min_size, name="decoder")
        self.box_loss = keras.losses.Huber(delta=1.0, reduction="none")

    @property
    def anchor_stride(self):
        """Pixels between neighbouring anchor centres: the backbone's stride over the head's upsampling."""
        return self.feature_stride // self.upsampling

    def build(self, input_shape):
        shape = input_shape["feature_map"] if isinstance(input_shape, dict) and "feature_map" in input_shape else None
        if shape is None:
            images = input_shape["images"] if isinstance(input_shape, dict) else input_shape
            self.backbone.build(images)
            if self.feature_layer is None:
                shape = self.backbone.compute_output_shape(images)
            else:
                # The tapped layer's shape: one pass on a zero image of the model's size.
                shape = tuple(self.feature_map(keras.ops.zeros((1, *self.image_size, 3))).shape)
        self.head.build(shape)
        if self.refinement is not None:
            self.refinement.build(shape, (shape[0], self.max_proposals, 4))
        self.built = True

    def feature_map(self, images, training=None):
        """The backbone's feature map of 0..255 images float [B, H, W, 3] (a model with a backbone only)."""
        if self.backbone is None:
            raise ValueError("this ProposalModel has no backbone: give `feature_map` instead of `images`")
        if self.feature_layer is None:
            return self.backbone(images, training=training)
        return self.backbone.maps(images, self.feature_layer, training=training)[0]

    def call(self, inputs, training=None):
        feature_map = inputs["feature_map"] if "feature_map" in inputs else self.feature_map(inputs["images"], training=training)
        logits, deltas = self.head(feature_map)
        self._check_anchor_count(logits)
        return logits, deltas

    def _check_anchor_count(self, logits):
        count = logits.shape[1]
        if count is not None and count != len(self.anchors):
            raise ValueError(
                f"the feature map gives {count} anchors but {self.image_size} images at stride {self.feature_stride} "
                f"have {len(self.anchors)}: the feature map must be [B, ceil(height / stride), ceil(width / stride), C]"
                + (f" (the head resizes it x{self.upsampling})" if self.upsampling > 1 else "")
            )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits, deltas = y_pred if y_pred is not None else self(x, training=training)
        labels, target_deltas, _ = self.targets(self.anchors, x["boxes"], x["box_mask"])
        sampled = ops.cast(ops.not_equal(labels, IGNORED), "float32")
        positive = ops.cast(ops.equal(labels, POSITIVE), "float32")
        count = ops.maximum(ops.sum(sampled), 1.0)
        objectness = ops.binary_crossentropy(ops.maximum(labels, 0.0), ops.cast(logits, "float32"), from_logits=True)
        box = ops.sum(self.box_loss(target_deltas, ops.cast(deltas, "float32")) * positive) * 4.0  # Huber averages the 4
        loss = (ops.sum(objectness * sampled) + self.box_loss_weight * box) / count
        if self.refinement is not None and self.refinement_loss_weight > 0:
            # Frozen-backbone training feeds the cached map; with a trainable backbone the map is computed
            # again here (`call` returns only the RPN's outputs, which `fit` and the exports rely on), in
            # inference mode so that batch-norm statistics are updated once a step, by the RPN's pass.
            feature_map = x["feature_map"] if "feature_map" in x else self.feature_map(x["images"], training=False)
            loss = loss + self.refinement_loss_weight * self.refinement_loss(feature_map, logits, deltas, x["boxes"], x["box_mask"])
        if self.losses:
            loss = loss + ops.sum(ops.stack(self.losses))
        return loss

    def refinement_loss(self, feature_map, logits, deltas, boxes, box_mask):
        """The second stage's loss on this batch's proposals (decoded without gradients, as `propose` does)."""
        proposals, _, count = self.decoder(
            self.anchors, ops.stop_gradient(ops.cast(logits, "float32")), ops.stop_gradient(ops.cast(deltas, "float32")),
            image_size=self.image_size,
        )
        proposals = ops.stop_gradient(proposals)
        real = ops.arange(self.max_proposals)[None, :] < ops.cast(count, "int32")[:, None]  # [B, K]
        box_mask = ops.cast(box_mask, "bool")
        iou = ops.where(box_mask[:, None, :], pairwise_iou(proposals, boxes), -1.0)  # [B, K, G]
        matched = ops.take_along_axis(ops.cast(boxes, "float32"), ops.argmax(iou, axis=2)[..., None], axis=1)  # [B, K, 4]
        regressed = ops.cast(real & (ops.max(iou, axis=2) >= self.refinement_min_iou), "float32")
        targets = bounding_boxes.encode_box_to_deltas(
            anchors=proposals, boxes=matched, anchor_format="xyxy", box_format="xyxy", variance=BoxRefinementHead.BOX_VARIANCE
        )
        targets = ops.where(regressed[..., None] > 0, targets, 0.0)  # no NaN from the padding rows' empty boxes
        predicted = ops.cast(self.refinement(feature_map, self._relative(proposals), real), "float32")
        per_box = ops.sum(self.box_loss(targets[..., None], predicted[..., None]), axis=-1)  # Huber of each delta, summed
        return ops.sum(per_box * regressed) / ops.maximum(ops.sum(regressed), 1.0)

    def _relative(self, boxes):
        """Pixel "xyxy" boxes [B, K, 4] of the model's image -> normalised "rel_yxyx" (RoIAlign's)."""
        height, width = self.image_size
        return bounding_boxes.convert_format(boxes, source="xyxy", target="rel_yxyx", height=height, width=width)

    def propose(self, inputs, decoder=None):
        """(boxes float [B, K, 4] pixel "xyxy" best first, scores float [B, K], count int [B]).

        `decoder`: another `ProposalDecoder` (e.g. more proposals or another NMS threshold); default: the model's.
        With a `refinement` head each decoded box is moved by its deltas (scores and order are the RPN's).
        """
        feature_map = inputs["feature_map"] if "feature_map" in inputs else self.feature_map(inputs["images"], training=False)
        logits, deltas = self({"feature_map": feature_map}, training=False)
        boxes, scores, count = (decoder or self.decoder)(self.anchors, logits, deltas, image_size=self.image_size)
        if self.refinement is None:
            return boxes, scores, count
        real = ops.arange(ops.shape(boxes)[1])[None, :] < ops.cast(count, "int32")[:, None]
        moved = refined_boxes(boxes, self.refinement(feature_map, self._relative(boxes), real), self.image_size)
        return ops.where(real[..., None], moved, boxes), scores, count

    def decoder_with(self, max_proposals=None, nms_iou_threshold=None):
        """A `ProposalDecoder` like the model's, with `max_proposals` and/or `nms_iou_threshold` replaced."""
        return ProposalDecoder(
            self.max_proposals if max_proposals is None else max_proposals,
            self.nms_iou_threshold if nms_iou_threshold is None else nms_iou_threshold,
            self.pre_nms_top, self.min_size, name="decoder",
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "feature_stride": self.feature_stride,
                "upsampling": self.upsampling,
                "anchor_sizes": self.anchor_sizes,
                "aspect_ratios": self.aspect_ratios,
                "filters": self.filters,
                "positive_iou": self.positive_iou,
                "negative_iou": self.negative_iou,
                "samples_per_image": self.samples_per_image,
                "positive_fraction": self.positive_fraction,
                "box_loss_weight": self.box_loss_weight,
                "max_proposals": self.max_proposals,
                "nms_iou_threshold": self.nms_iou_threshold,
                "pre_nms_top": self.pre_nms_top,
                "min_size": self.min_size,
                "seed": self.seed,
                "backbone": None if self.backbone is None else keras.saving.serialize_keras_object(self.backbone),
                "feature_layer": self.feature_layer,
                "refinement": None if self.refinement is None else keras.saving.serialize_keras_object(self.refinement),
                "refinement_min_iou": self.refinement_min_iou,
                "refinement_loss_weight": self.refinement_loss_weight,
            }
        )
        return config
