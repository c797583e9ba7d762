"""Region features of padded boxes: one backbone pass per image, then RoIAlign (no projection)."""

import keras

from vsa_tf.config import image_encoder_config
from vsa_tf.layers.backbones import Backbone
from vsa_tf.layers.roi_pooling import RoIAlign


@keras.saving.register_keras_serializable(package="vsa_tf")
class RegionFeatureExtractor(keras.layers.Layer):
    """CNN features of every box of every image: the feature map is computed once per image.

    Shared by the alignment model, the captioner and the joint embedding.

    Args:
        backbone: backbone architecture name (see `vsa_tf.layers.backbones.BACKBONE_NAMES`).
        backbone_weights: optional local weights file for an application backbone.
        backbone_frozen: whether the backbone's weights are frozen.
        backbone_filters: block widths of the "simple" backbone.
        pool_size: RoIAlign bins per side.
        pooling: "average" (output C) or "flatten" (output pool_size**2 * C).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: dict with `images` float [B, H, W, 3] in 0..255, `boxes` float [B, R, 4] rel_yxyx and
            `region_mask` bool [B, R] (other keys are ignored).
        training: whether the backbone runs in training mode.

    Returns:
        float [B, R, D] region features; padding regions are zero.

    Example:
    >>> extractor = RegionFeatureExtractor(backbone_filters=(4, 8))
    >>> batch = {"images": np.zeros((2, 32, 32, 3), "float32"), "boxes": np.tile([[[0, 0, 1, 1]]], (2, 3, 1)).astype("float32"),
    ...          "region_mask": np.ones((2, 3), bool)}
    >>> extractor(batch).shape
    TensorShape([2, 3, 8])

    `RegionFeatureExtractor.from_image_encoder(ImageEncoderConfig(...))` builds it from the image
    settings a model config carries (`vsa_tf.config.ImageEncoderConfig`).

    Reference: Karpathy & Fei-Fei 2015, eq. 1 (CNN(I_b)); Girshick, "Fast R-CNN", ICCV 2015.
    """

    @classmethod
    def from_image_encoder(cls, image_encoder, **kwargs):
        """The extractor of a pixel-mode `ImageEncoderConfig` (or its dict); `kwargs` go to the layer."""
        image_encoder = image_encoder_config(image_encoder)
        if image_encoder.mode != "pixels":
            raise ValueError(f"RegionFeatureExtractor needs a 'pixels' image encoder, received mode {image_encoder.mode!r}")
        return cls(
            backbone=image_encoder.backbone,
            backbone_weights=image_encoder.weights,
            backbone_frozen=image_encoder.frozen,
            backbone_filters=image_encoder.filters,
            pool_size=image_encoder.pool_size,
            pooling=image_encoder.pooling,
            **kwargs,
        )

    def __init__(
        self,
        backbone="simple",
        backbone_weights=None,
        backbone_frozen=False,
        backbone_filters=(32, 64, 128, 128),
        pool_size=2,
        pooling="average",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.backbone_frozen = backbone_frozen
        self.backbone_filters = tuple(int(count) for count in backbone_filters)
        self.pool_size = pool_size
        self.pooling = pooling
        self.backbone_layer = Backbone(
            architecture=backbone,
            weights_path=backbone_weights,
            frozen=backbone_frozen,
            filters=self.backbone_filters,
            name="backbone",
            dtype=self.dtype_policy,
        )
        self.roi_align = RoIAlign(pool_size=pool_size, pooling=pooling, name="roi_align", dtype=self.dtype_policy)

    def build(self, input_shape):
        images_shape = input_shape["images"]
        self.backbone_layer.build(tuple(images_shape))
        self.built = True

    def call(self, inputs, training=None):
        for key in ("images", "boxes", "region_mask"):
            if key not in inputs:
                raise ValueError(f"RegionFeatureExtractor needs batch keys images, boxes, region_mask; received keys {sorted(inputs)}")
        feature_map = self.backbone_layer(inputs["images"], training=training)  # (B, h, w, C)
        return self.roi_align(feature_map, inputs["boxes"], region_mask=inputs["region_mask"])  # (B, R, D)

    @property
    def output_dim(self):
        channels = self.backbone_filters[-1] if self.backbone == "simple" else None
        if channels is not None and self.pooling == "flatten":
            channels *= self.pool_size * self.pool_size
        return channels

    def compute_output_shape(self, input_shape):
        map_shape = self.backbone_layer.compute_output_shape(tuple(input_shape["images"]))
        return self.roi_align.compute_output_shape(map_shape, tuple(input_shape["boxes"]))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": self.backbone,
                "backbone_weights": self.backbone_weights,
                "backbone_frozen": self.backbone_frozen,
                "backbone_filters": list(self.backbone_filters),
                "pool_size": self.pool_size,
                "pooling": self.pooling,
            }
        )
        return config
