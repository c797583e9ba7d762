"""EfficientNet-Lite0 in Keras: keras-cv's `EfficientNetLiteBackbone` with the B0 stage table, on 0..255 pixels.

The network is the official TF EfficientNet-Lite0 (no squeeze-excite, ReLU6, stem and head not scaled,
batch norm epsilon 1e-3, TF "SAME" padding, inputs scaled as (x - 127) / 128), which is exactly keras-cv
0.9's `EfficientNetLiteBackbone` with the B0 coefficients. Its ImageNet weights come from a PyTorch state
dict converted by `vsa_tf.pretrained.conversion`.

keras-cv's `EfficientNetLiteB0Backbone(...)` alias resolves its preset through a download, so the
backbone is built here from the same stage arguments with `EfficientNetLiteBackbone` (no network access).
keras-cv pads stride-2 layers assuming even feature sizes when the input size is dynamic; use image sides
that are multiples of 32 (224 here) to match TF "SAME" padding exactly.
"""

import os

import keras

# The B0 stage table of EfficientNet-Lite (`efficientnet_lite_builder.py` in tensorflow/tpu).
LITE0_ARCHITECTURE = {
    "stackwise_kernel_sizes": [3, 3, 5, 3, 5, 5, 3],
    "stackwise_num_repeats": [1, 2, 2, 3, 3, 4, 1],
    "stackwise_input_filters": [32, 16, 24, 40, 80, 112, 192],
    "stackwise_output_filters": [16, 24, 40, 80, 112, 192, 320],
    "stackwise_expansion_ratios": [1, 6, 6, 6, 6, 6, 6],
    "stackwise_strides": [1, 2, 2, 2, 1, 2, 1],
}
INPUT_OFFSET = 127.0  # the pretrained network sees (pixels - 127) / 128
INPUT_SCALE = 128.0
FEATURE_DIM = 1280  # channels of the final feature map (`top_activation`)
FEATURE_STRIDE = 32  # input pixels per feature-map cell
NUM_IMAGENET_CLASSES = 1000
BACKBONE_NAME = "efficientnet_lite0_backbone"
SCALING_NAME = "pixel_scaling"  # the Rescaling layer in front of the backbone


def build_efficientnet_lite(
    architecture=None,
    weights_path=None,
    include_top=False,
    num_classes=NUM_IMAGENET_CLASSES,
    input_shape=(None, None, 3),
):
    """Builds an EfficientNet-Lite network that takes pixels in 0..255.

    Args:
        architecture: dict of keras-cv `stackwise_*` stage arguments; `None` means `LITE0_ARCHITECTURE`.
            Other tables (tiny ones in tests) use the same stem (32) and head (1280) widths.
        weights_path: optional `.weights.h5` file written by
            `vsa_tf.pretrained.conversion.convert_state_dict_to_weights_file` for the same architecture
            and `num_classes`.
        include_top: `True` returns the classifier (global average pooling + Dense logits,
            `[B, num_classes]`); `False` the feature extractor (`[B, H / 32, W / 32, 1280]`).
        num_classes: width of the classifier head; also needed to read a weights file.
        input_shape: `(height, width, 3)`, `None` for any size.

    Returns:
        A `keras.Model`. The feature extractor shares its layers with the classifier that the weights
        file was saved from, so both views load the same file.
    """
    # Imported here: keras-cv takes seconds to import and only this builder needs it.
    from keras_cv.models import EfficientNetLiteBackbone

    architecture = dict(LITE0_ARCHITECTURE if architecture is None else architecture)
    expected = set(LITE0_ARCHITECTURE)
    if set(architecture) != expected:
        raise ValueError(f"architecture must have exactly the keys {sorted(expected)}; received {sorted(architecture)}")
    if weights_path is not None and not os.path.isfile(weights_path):
        raise ValueError(f"EfficientNet-Lite weights file not found: {weights_path!r}")
    inputs = keras.Input(shape=input_shape, name="images")  # [B, H, W, 3] pixels in 0..255
    scaled = keras.layers.Rescaling(1.0 / INPUT_SCALE, offset=-INPUT_OFFSET / INPUT_SCALE, name=SCALING_NAME)(inputs)
    backbone = EfficientNetLiteBackbone(
        include_rescaling=False,
        width_coefficient=1.0,
        depth_coefficient=1.0,
        input_shape=input_shape,
        name=BACKBONE_NAME,
        **architecture,
    )
    feature_map = backbone(scaled)  # [B, H / 32, W / 32, 1280]
    pooled = keras.layers.GlobalAveragePooling2D(name="average_pool")(feature_map)
    logits = keras.layers.Dense(num_classes, name="predictions")(pooled)
    classifier = keras.Model(inputs, logits, name="efficientnet_lite_classifier")
    if weights_path is not None:
        classifier.load_weights(weights_path)
    if include_top:
        return classifier
    return keras.Model(inputs, feature_map, name="efficientnet_lite_features")


def build_efficientnet_lite0(weights_path=None, include_top=False, input_shape=(None, None, 3)):
    """EfficientNet-Lite0 (ImageNet weights from `weights_path`) on 0..255 pixels; see `build_efficientnet_lite`.

    Example:
    ```python
    features = build_efficientnet_lite0("efficientnet_lite0.weights.h5")
    features(np.zeros((1, 224, 224, 3)))  # [1, 7, 7, 1280]
    ```
    """
    return build_efficientnet_lite(weights_path=weights_path, include_top=include_top, input_shape=input_shape)


def block_prefixes(architecture=None):
    """Keras-cv layer-name prefixes of the blocks in PyTorch order: `_blocks.i` -> `block{stage}{letter}_`."""
    architecture = LITE0_ARCHITECTURE if architecture is None else architecture
    prefixes = []
    for stage, repeats in enumerate(architecture["stackwise_num_repeats"]):
        for repeat in range(repeats):
            prefixes.append(f"block{stage + 1}{chr(ord('a') + repeat)}_")
    return prefixes
