"""Image side of the alignment model: region vectors v = W_m CNN(I_b) + b_m (eq. 1)."""

import keras
from keras import ops

from vsa_tf.config import image_encoder_config
from vsa_tf.layers.region_features import RegionFeatureExtractor


@keras.saving.register_keras_serializable(package="vsa_tf")
class RegionEncoder(keras.layers.Layer):
    """Projects the CNN features of each image's padded regions into the h-dimensional multimodal space.

    In "pixels" mode a `RegionFeatureExtractor` (backbone once per image + RoIAlign) computes CNN(I_b);
    in "cached" mode the batch carries precomputed `region_features` (e.g. 4096-d fc7). Dropout is applied
    to the CNN features before the projection. Padding regions give all-zero vectors.

    Args:
        output_dim: h, the multimodal embedding size.
        image_encoder: a `vsa_tf.config.ImageEncoderConfig` (or its dict): "pixels" or "cached" mode and,
            in pixel mode, the backbone and RoIAlign settings of the `RegionFeatureExtractor`.
        dropout: dropout rate on the CNN features.
        kernel_initializer: initializer of W_m.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: a batch dict (docs/CONVENTIONS.md): pixel mode `images`, `boxes`, `region_mask`;
            cached mode `region_features` [B, R, D] and `region_mask` [B, R].
        training: whether dropout is active.

    Returns:
        `(region_vectors, region_mask)`: float [B, R, h] and bool [B, R].

    Example:
    >>> from vsa_tf.config import ImageEncoderConfig
    >>> encoder = RegionEncoder(output_dim=4, image_encoder=ImageEncoderConfig(mode="cached"))
    >>> vectors, mask = encoder({"region_features": np.ones((2, 3, 6), "float32"), "region_mask": np.ones((2, 3), bool)})
    >>> vectors.shape
    TensorShape([2, 3, 4])

    Reference: Karpathy & Fei-Fei, "Deep Visual-Semantic Alignments for Generating Image Descriptions",
    CVPR 2015, section 3.1.1, eq. 1.
    """

    def __init__(self, output_dim, image_encoder=None, dropout=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if int(output_dim) <= 0:
            raise ValueError(f"output_dim must be positive; received {output_dim!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received {dropout!r}")
        self.output_dim = int(output_dim)
        self.image_encoder = image_encoder_config(image_encoder)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.feature_extractor = None
        if not self.image_encoder.cached:
            self.feature_extractor = RegionFeatureExtractor.from_image_encoder(
                self.image_encoder, name="region_features", dtype=self.dtype_policy
            )
        self.feature_dropout = keras.layers.Dropout(self.dropout, name="feature_dropout")
        self.projection = keras.layers.Dense(
            self.output_dim,
            kernel_initializer=keras.initializers.get(kernel_initializer),
            name="projection",
            dtype=self.dtype_policy,
        )

    def _check_keys(self, inputs):
        required = ("region_features", "region_mask") if self.image_encoder.cached else ("images", "boxes", "region_mask")
        missing = [key for key in required if key not in inputs]
        if missing:
            raise ValueError(
                f"RegionEncoder(image_encoder.mode={self.image_encoder.mode!r}) needs batch keys {list(required)}; "
                f"missing {missing} in the received keys {sorted(inputs)}"
            )

    def _feature_shape(self, input_shape):
        self._check_keys(input_shape)
        if self.image_encoder.cached:
            return tuple(input_shape["region_features"])
        self.feature_extractor.build(input_shape)
        return tuple(self.feature_extractor.compute_output_shape(input_shape))

    def build(self, input_shape):
        # Idempotent: a model's `build` may run after this layer was already called (and built).
        feature_shape = self._feature_shape(input_shape)
        if not self.projection.built:
            self.projection.build(feature_shape)
        self.built = True

    def call(self, inputs, training=None):
        self._check_keys(inputs)
        region_mask = ops.cast(inputs["region_mask"], "bool")
        if self.image_encoder.cached:
            features = ops.cast(inputs["region_features"], self.compute_dtype)  # (B, R, D)
        else:
            features = self.feature_extractor(inputs, training=training)  # (B, R, D)
        features = self.feature_dropout(features, training=training)
        vectors = self.projection(features)  # (B, R, h)
        vectors = vectors * ops.cast(region_mask, vectors.dtype)[..., None]
        return vectors, region_mask

    def compute_output_shape(self, input_shape):
        mask_shape = tuple(input_shape["region_mask"])
        return (mask_shape + (self.output_dim,), mask_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "image_encoder": self.image_encoder.to_dict(),
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
