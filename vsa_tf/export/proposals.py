"""Region proposals inside the exported graphs: image -> proposal boxes in the original image's pixels.

`ProposalStage` puts a proposals run's `vsa_tf.models.proposal_model.ProposalModel` (the RPN head,
delta decoding and `tf.image.combined_non_max_suppression`, all stock TensorFlow ops) in front of
the region pooling of the captioner's and aligner's `*_proposals` signatures.

One backbone pass per image: when the proposal network's backbone is the exported model's region
backbone (same architecture and block widths, same image size, identical weights, checked
numerically when the stage is built), the feature map is computed once and feeds both the RPN head
and RoIAlign. Otherwise both backbones run, and `backbone_difference` says why (`vsa-tf export`
prints it as a one-line warning).

The boxes come out as the proposals job writes them (`vsa_tf.jobs.proposal_boxes.propose_records`):
`ProposalModel.propose`'s pixel boxes of the resized image, scaled by each image's decoded size,
best first. Raw `tf` (not `keras.ops`): graph-only serving code, traced without autograph.
"""

import numpy as np
import tensorflow as tf

from vsa_tf.export import preprocessing


def backbone_difference(first, second, image_size):
    """Why two `Backbone` layers compute different feature maps of ``image_size`` images; None if they do not.

    Same architecture and block widths, the same number and shapes of weights, equal weight values
    (trainable and not, e.g. batch-norm statistics), and equal feature maps of one random image.
    """
    if first.architecture != second.architecture:
        return f"architectures differ ({first.architecture} vs {second.architecture})"
    if first.architecture == "simple" and tuple(first.filters) != tuple(second.filters):
        return f"block widths differ ({list(first.filters)} vs {list(second.filters)})"
    first_weights, second_weights = first.get_weights(), second.get_weights()
    if len(first_weights) != len(second_weights) or any(a.shape != b.shape for a, b in zip(first_weights, second_weights)):
        return "weight shapes differ"
    if not all(np.array_equal(a, b) for a, b in zip(first_weights, second_weights)):
        return "weights differ"
    image = np.random.RandomState(0).uniform(0.0, 255.0, (1, int(image_size[0]), int(image_size[1]), 3)).astype("float32")
    first_map = np.asarray(first(image, training=False))
    second_map = np.asarray(second(image, training=False))
    if first_map.shape != second_map.shape or not np.allclose(first_map, second_map, rtol=1e-5, atol=1e-5):
        return "feature maps differ"
    return None


class ProposalStage:
    """A proposal network and a region feature extractor sharing, where they can, one backbone pass.

    Args:
        proposal_model: a built `ProposalModel` with a backbone (a proposals run's model).
        feature_extractor: the exported model's `vsa_tf.layers.region_features.RegionFeatureExtractor`.
        image_size: (height, width) the exported model resizes images to; must be the proposal
            model's `image_size`.
        model_name: the exported model's name, for error messages.

    Attributes:
        shares_backbone: True when one feature map feeds both the proposals and the region features.
        backbone_difference: None, or why the two backbones are not the same network.
        max_proposals: K, the boxes proposed per image.
    """

    def __init__(self, proposal_model, feature_extractor, image_size, model_name="model"):
        image_size = tuple(int(size) for size in image_size)
        if getattr(proposal_model, "backbone", None) is None:
            raise ValueError("the proposal model has no backbone: exported proposals need one that reads images")
        if feature_extractor is None:
            raise ValueError(f"the {model_name} reads cached region features: proposals need a pixel-mode model")
        if tuple(proposal_model.image_size) != image_size:
            raise ValueError(
                f"the proposal model lays its anchors on {tuple(proposal_model.image_size)} images but the {model_name} "
                f"resizes images to {image_size}: train the proposals at the {model_name}'s data.image_size"
            )
        self.proposal_model = proposal_model
        self.feature_extractor = feature_extractor
        self.image_size = image_size
        self.max_proposals = int(proposal_model.max_proposals)
        self.backbone_difference = backbone_difference(proposal_model.backbone, feature_extractor.backbone_layer, image_size)
        self.shares_backbone = self.backbone_difference is None

    @property
    def tracked_layers(self):
        """What the SavedModel must hold beyond the exported model: the heads alone when the backbone is shared."""
        if not self.shares_backbone:
            return [self.proposal_model]
        refinement = self.proposal_model.refinement
        return [self.proposal_model.head] + ([refinement] if refinement is not None else [])

    def feature_maps(self, images):
        """images float [B, H, W, 3] in 0..255 -> (proposal feature map, region feature map)."""
        if self.shares_backbone:  # one backbone pass feeds both (the proposals' map may be a tapped earlier layer)
            return self.feature_extractor.backbone_layer.maps(images, self.proposal_model.feature_layer, training=False)
        region_map = self.feature_extractor.backbone_layer(images, training=False)  # [B, h, w, C]
        return self.proposal_model.feature_map(images, training=False), region_map

    def propose(self, feature_map, heights, widths):
        """The proposals of a feature map, in each image's decoded pixels.

        Args:
            feature_map: the proposal network's feature map [B, h, w, C].
            heights, widths: int32 [B], the decoded image sizes.

        Returns:
            dict of `boxes` float32 [B, K, 4] pixel x0, y0, x1, y1 best first (padding rows -1),
            `box_scores` float32 [B, K] objectness (padding 0) and `box_mask` bool [B, K]; the real
            boxes come first.
        """
        boxes, scores, count = self.proposal_model.propose({"feature_map": feature_map})  # resized-image pixels
        boxes, scores = tf.convert_to_tensor(boxes, tf.float32), tf.convert_to_tensor(scores, tf.float32)
        height, width = self.image_size
        scale = tf.stack(
            [tf.cast(widths, tf.float32) / width, tf.cast(heights, tf.float32) / height] * 2, axis=1
        )  # [B, 4]: resized -> decoded pixels, as `propose_records`
        boxes = boxes * scale[:, None, :]
        mask = (tf.range(self.max_proposals)[None, :] < tf.cast(count, tf.int32)[:, None]) & preprocessing.valid_box_mask(boxes)
        # A box that degenerates (a `min_size` of 0) is dropped and the rest moved up, so the real
        # boxes stay first (the region batches take the first max_boxes rows).
        order = tf.argsort(tf.cast(tf.logical_not(mask), tf.int32), axis=1, stable=True)
        boxes, scores, mask = (tf.gather(value, order, batch_dims=1) for value in (boxes, scores, mask))
        return {
            "boxes": tf.where(mask[:, :, None], boxes, -tf.ones_like(boxes)),
            "box_scores": tf.where(mask, scores, tf.zeros_like(scores)),
            "box_mask": mask,
        }

    def region_features(self, feature_map, boxes, region_mask):
        """RoIAlign of rel_yxyx boxes [B, R, 4] on the region feature map -> [B, R, D] (padding zero)."""
        return self.feature_extractor.roi_align(feature_map, boxes, region_mask=region_mask)
