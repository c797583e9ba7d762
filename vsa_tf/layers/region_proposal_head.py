"""The RPN head of Faster R-CNN: an objectness logit and box deltas for every anchor of a feature map."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vsa_tf")
class RegionProposalHead(keras.layers.Layer):
    """A 3 x 3 convolution (ReLU) on the backbone's feature map, then two sibling 1 x 1 convolutions.

    With `upsampling` > 1 the map is first resized bilinearly by that factor, so the anchors can be laid
    at a finer stride than the backbone's (stride 16 from EfficientNet's stride-32 map) while the region
    features keep reading the one backbone map (one backbone pass feeds both).

    Outputs are flattened in the order of keras-cv's `AnchorGenerator` for one level: row by row over
    the map's positions, then the `anchors_per_location` anchors of each position, so output row `i`
    belongs to anchor `i` of that level.

    Args:
        anchors_per_location: k, anchors per feature-map position (scales x aspect ratios).
        filters: channels of the 3 x 3 convolution (the paper: 256 for ZF, 512 for VGG).
        upsampling: integer factor the feature map is resized by (bilinear) before the convolution.
        **kwargs: base layer arguments.

    Call arguments:
        feature_map: float [B, h, w, C].

    Returns:
        (objectness logits float [B, u h * u w * k], box deltas float [B, u h * u w * k, 4]), u = upsampling.

    Example:
    >>> head = RegionProposalHead(anchors_per_location=3, filters=8)
    >>> logits, deltas = head(np.zeros((2, 4, 5, 16), "float32"))
    >>> tuple(logits.shape), tuple(deltas.shape)
    ((2, 60), (2, 60, 4))
    >>> upsampled = RegionProposalHead(anchors_per_location=3, filters=8, upsampling=2)
    >>> tuple(upsampled(np.zeros((2, 4, 5, 16), "float32"))[0].shape)
    (2, 240)

    Reference: Ren et al., "Faster R-CNN", NeurIPS 2015, section 3.1 (the n x n sliding window and the
    cls / reg layers of Figure 3).
    """

    def __init__(self, anchors_per_location, filters=256, upsampling=1, **kwargs):
        super().__init__(**kwargs)
        if int(anchors_per_location) < 1:
            raise ValueError(f"anchors_per_location must be >= 1, received {anchors_per_location!r}")
        if int(filters) < 1:
            raise ValueError(f"filters must be >= 1, received {filters!r}")
        if int(upsampling) < 1:
            raise ValueError(f"upsampling must be an integer >= 1, received {upsampling!r}")
        self.anchors_per_location = int(anchors_per_location)
        self.filters = int(filters)
        self.upsampling = int(upsampling)
        # Bilinear resize: one stock ResizeBilinear op in the exported graphs.
        self.resize = keras.layers.UpSampling2D(self.upsampling, interpolation="bilinear", dtype=self.dtype_policy, name="resize")
        initializer = keras.initializers.RandomNormal(stddev=0.01, seed=None)  # the paper's N(0, 0.01)
        self.conv = keras.layers.Conv2D(self.filters, 3, padding="same", activation="relu", kernel_initializer=initializer,
                                        dtype=self.dtype_policy, name="conv")
        self.objectness = keras.layers.Conv2D(self.anchors_per_location, 1, kernel_initializer=initializer,
                                              dtype=self.dtype_policy, name="objectness")
        # Zero deltas at the start: every proposal begins as its anchor.
        self.box_deltas = keras.layers.Conv2D(4 * self.anchors_per_location, 1, kernel_initializer="zeros",
                                              dtype=self.dtype_policy, name="box_deltas")

    def build(self, feature_map_shape):
        feature_map_shape = self._upsampled_shape(feature_map_shape)
        self.conv.build(feature_map_shape)
        hidden_shape = tuple(feature_map_shape[:-1]) + (self.filters,)
        self.objectness.build(hidden_shape)
        self.box_deltas.build(hidden_shape)
        self.built = True

    def _upsampled_shape(self, feature_map_shape):
        batch, height, width, channels = tuple(feature_map_shape)
        scale = lambda size: None if size is None else size * self.upsampling  # noqa: E731
        return (batch, scale(height), scale(width), channels)

    def call(self, feature_map):
        if self.upsampling > 1:
            feature_map = self.resize(feature_map)
        hidden = self.conv(feature_map)
        batch = ops.shape(feature_map)[0]
        logits = ops.reshape(self.objectness(hidden), (batch, -1))
        deltas = ops.reshape(self.box_deltas(hidden), (batch, -1, 4))
        return logits, deltas

    def compute_output_shape(self, feature_map_shape):
        batch, height, width, _ = self._upsampled_shape(feature_map_shape)
        count = None if height is None or width is None else height * width * self.anchors_per_location
        return (batch, count), (batch, count, 4)

    def get_config(self):
        config = super().get_config()
        config.update({"anchors_per_location": self.anchors_per_location, "filters": self.filters, "upsampling": self.upsampling})
        return config
