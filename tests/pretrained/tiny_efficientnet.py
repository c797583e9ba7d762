"""A tiny EfficientNet-Lite (same stem and head widths as Lite0), its synthetic PyTorch state dict, a
NumPy reference of the PyTorch network, and a three-image dataset: shared by the pretrained, job and
command tests."""

import json

import numpy as np
from PIL import Image

from vsa_tf.pretrained import conversion
from vsa_tf.pretrained import efficientnet_lite


# Two stages cover every block kind: no expansion (1a), a stride-2 5x5 depthwise (2a) and a residual (2b).
TINY_ARCHITECTURE = {
    "stackwise_kernel_sizes": [3, 5],
    "stackwise_num_repeats": [1, 2],
    "stackwise_input_filters": [32, 8],
    "stackwise_output_filters": [8, 16],
    "stackwise_expansion_ratios": [1, 2],
    "stackwise_strides": [1, 2],
}
NUM_CLASSES = 10


def synthetic_state_dict(architecture=None, num_classes=NUM_CLASSES, seed=0):
    """A lukemelas-style state dict (random numpy arrays) for a stage table; `None` means Lite0."""
    architecture = efficientnet_lite.LITE0_ARCHITECTURE if architecture is None else architecture
    rng = np.random.default_rng(seed)
    state = {}

    def convolution(name, out_channels, in_channels, kernel):
        scale = 1.5 / np.sqrt(in_channels * kernel * kernel)  # keeps activations O(1) through 16 blocks
        state[name] = rng.normal(0, scale, (out_channels, in_channels, kernel, kernel)).astype(np.float32)

    def batch_norm(prefix, channels):
        state[prefix + "weight"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
        state[prefix + "bias"] = rng.normal(0, 0.1, channels).astype(np.float32)
        state[prefix + "running_mean"] = rng.normal(0, 0.1, channels).astype(np.float32)
        state[prefix + "running_var"] = rng.uniform(0.5, 2.0, channels).astype(np.float32)
        state[prefix + "num_batches_tracked"] = np.array(100, np.int64)

    convolution("_conv_stem.weight", 32, 3, 3)
    batch_norm("_bn0.", 32)
    index = 0
    for stage, repeats in enumerate(architecture["stackwise_num_repeats"]):
        for repeat in range(repeats):
            channels_in = architecture["stackwise_input_filters" if repeat == 0 else "stackwise_output_filters"][stage]
            channels_out = architecture["stackwise_output_filters"][stage]
            kernel = architecture["stackwise_kernel_sizes"][stage]
            expansion = architecture["stackwise_expansion_ratios"][stage]
            prefix = f"_blocks.{index}."
            hidden = channels_in * expansion
            if expansion != 1:
                convolution(prefix + "_expand_conv.weight", hidden, channels_in, 1)
                batch_norm(prefix + "_bn0.", hidden)
            state[prefix + "_depthwise_conv.weight"] = rng.normal(0, 1.5 / kernel, (hidden, 1, kernel, kernel)).astype(np.float32)
            batch_norm(prefix + "_bn1.", hidden)
            convolution(prefix + "_project_conv.weight", channels_out, hidden, 1)
            batch_norm(prefix + "_bn2.", channels_out)
            index += 1
    convolution("_conv_head.weight", 1280, architecture["stackwise_output_filters"][-1], 1)
    batch_norm("_bn1.", 1280)
    state["_fc.weight"] = rng.normal(0, 0.05, (num_classes, 1280)).astype(np.float32)
    state["_fc.bias"] = rng.normal(0, 0.1, num_classes).astype(np.float32)
    return state


def tiny_state_dict(seed=0):
    return synthetic_state_dict(TINY_ARCHITECTURE, seed=seed)


# A NumPy forward pass written directly against the PyTorch layouts ([out, in, kh, kw] kernels, TF "SAME"
# padding of lukemelas' Conv2dStaticSamePadding), independent of the Keras mapping under test.
def numpy_convolution(x, weight, stride, depthwise=False):
    batch, height, width, _ = x.shape
    kernel = weight.shape[-1]
    out_height, out_width = -(-height // stride), -(-width // stride)
    pad_height = max((out_height - 1) * stride + kernel - height, 0)
    pad_width = max((out_width - 1) * stride + kernel - width, 0)
    x = np.pad(x, ((0, 0), (pad_height // 2, pad_height - pad_height // 2), (pad_width // 2, pad_width - pad_width // 2), (0, 0)))
    out = np.zeros((batch, out_height, out_width, weight.shape[0]), np.float64)
    for dy in range(kernel):
        for dx in range(kernel):
            patch = x[:, dy : dy + stride * out_height : stride, dx : dx + stride * out_width : stride, :]
            if depthwise:
                out += patch * weight[:, 0, dy, dx]
            else:
                out += np.einsum("bhwc,oc->bhwo", patch, weight[:, :, dy, dx])
    return out


def numpy_batch_norm(x, state, prefix):
    scale = state[prefix + "weight"] / np.sqrt(state[prefix + "running_var"] + 1e-3)
    return (x - state[prefix + "running_mean"]) * scale + state[prefix + "bias"]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def numpy_forward(state, images):
    """-> (feature map [B, h, w, 1280], logits [B, classes])."""
    x = (images.astype(np.float64) - 127.0) / 128.0
    x = relu6(numpy_batch_norm(numpy_convolution(x, state["_conv_stem.weight"], 2), state, "_bn0."))
    for index, stride in enumerate([1, 2, 1]):
        prefix = f"_blocks.{index}."
        block_input = x
        if prefix + "_expand_conv.weight" in state:
            x = relu6(numpy_batch_norm(numpy_convolution(x, state[prefix + "_expand_conv.weight"], 1), state, prefix + "_bn0."))
        x = numpy_convolution(x, state[prefix + "_depthwise_conv.weight"], stride, depthwise=True)
        x = relu6(numpy_batch_norm(x, state, prefix + "_bn1."))
        x = numpy_batch_norm(numpy_convolution(x, state[prefix + "_project_conv.weight"], 1), state, prefix + "_bn2.")
        if x.shape == block_input.shape:
            x = x + block_input
    feature_map = relu6(numpy_batch_norm(numpy_convolution(x, state["_conv_head.weight"], 1), state, "_bn1."))
    logits = feature_map.mean(axis=(1, 2)) @ state["_fc.weight"].T + state["_fc.bias"]
    return feature_map, logits


def tiny_classifier(state):
    converted = conversion.convert_state_dict(state, architecture=TINY_ARCHITECTURE)
    classifier = efficientnet_lite.build_efficientnet_lite(TINY_ARCHITECTURE, include_top=True, num_classes=NUM_CLASSES)
    conversion.assign_converted_weights(classifier, converted)
    return classifier


def write_tiny_dataset(root):
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(4)
    entries = []
    for index, (name, split) in enumerate([("a.png", "train"), ("b.png", "train"), ("c.png", "val")]):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(images / name)
        entries.append({"filename": name, "imgid": index, "split": split, "sentences": [{"tokens": ["a", "dog"], "raw": "A dog."}]})
    (root / "dataset.json").write_text(json.dumps({"images": entries, "dataset": "tiny"}))
    (root / "boxes.json").write_text(json.dumps({"a.png": [[0, 0, 32, 32], [16, 16, 64, 48]], "c.png": [[8, 8, 40, 60]]}))
    return root


def write_tiny_weights(path, seed=0):
    """Converts `tiny_state_dict(seed)` into the `.weights.h5` file `path`; returns `path`."""
    conversion.convert_state_dict_to_weights_file(tiny_state_dict(seed), str(path), architecture=TINY_ARCHITECTURE)
    return str(path)


def tiny_feature_model(weights_path):
    """The feature view `[B, H / 4, W / 4, 1280]` of the tiny network with the weights of `weights_path`."""
    return efficientnet_lite.build_efficientnet_lite(TINY_ARCHITECTURE, weights_path=weights_path, num_classes=NUM_CLASSES)


def build_tiny_lite0(weights_path=None, include_top=False, input_shape=(None, None, 3)):
    """Stands in for `efficientnet_lite.build_efficientnet_lite0` (monkeypatched) with the tiny table."""
    return efficientnet_lite.build_efficientnet_lite(
        TINY_ARCHITECTURE, weights_path=weights_path, include_top=include_top, num_classes=NUM_CLASSES, input_shape=input_shape
    )
