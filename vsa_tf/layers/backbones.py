"""CNN backbones that turn 0..255 images into a feature map for RoI pooling.

`build_backbone(name, ...)` returns a `Backbone` layer: the small built-in conv net ("simple", trained
from scratch, the default for the synthetic world) or a `keras.applications` / keras-cv network whose
weights come from a local file (no downloads). Every backbone scales its own 0..255 input.
"""

import re

import keras
from keras import ops

from vsa_tf.files import atomic_save_weights

from vsa_tf.pretrained import efficientnet_lite

# name -> (constructor path, feature layer or None for the network's output, input scaling).
# Feature layers are chosen for a stride of 16 where the network has one (Fast R-CNN pools from conv5 of
# VGG16 at stride 16); the others use the network's final map (stride 32).
APPLICATION_BACKBONES = {
    "vgg16": ("keras.applications.VGG16", "block5_conv3", "caffe"),
    "resnet50": ("keras.applications.ResNet50", "conv4_block6_out", "caffe"),
    "mobilenet_v2": ("keras.applications.MobileNetV2", None, "tf"),
    "efficientnet_b0": ("keras.applications.EfficientNetB0", None, "none"),
    # keras-cv's EfficientNetLiteBackbone with the B0 table; its weights file is the converted ImageNet
    # classifier of `vsa_tf.pretrained.efficientnet_lite` (which also scales the pixels itself).
    "efficientnet_lite_b0": ("vsa_tf.pretrained.efficientnet_lite.build_efficientnet_lite0", None, "none"),
}
BACKBONE_NAMES = ("simple",) + tuple(APPLICATION_BACKBONES)

# name -> the last stride-16 layer of the networks whose output is at stride 32: the map Faster R-CNN's
# RPN reads (conv5 of VGG16), tapped from the same pass that computes the output (`Backbone.maps`).
# EfficientNet's and MobileNetV2's choice is the expansion of the first stride-32 block, whose input
# is the last stride-16 map (the layer SSDLite taps in MobileNetV2).
STRIDE_16_LAYERS = {
    "mobilenet_v2": "block_13_expand_relu",
    "efficientnet_b0": "block6a_expand_activation",
    "efficientnet_lite_b0": "block6a_expand_activation",
}

# ImageNet BGR channel means used by the "caffe" preprocessing of VGG16 / ResNet50.
_CAFFE_MEANS_BGR = (103.939, 116.779, 123.68)


def _short_error(error):
    """Keras's weight-loading errors print whole variables; keep the first line and the shape mismatch."""
    text = str(error)
    first_line = text.splitlines()[0] if text else type(error).__name__
    mismatch = re.search(r"variable\.shape=\([^)]*\), Received: value\.shape=\([^)]*\)", text)
    return f"{first_line} ({mismatch.group(0)})" if mismatch else first_line


def _construct_application(name, input_shape, weights_path):
    """The network with its weights loaded from `weights_path` (a local file) when given."""
    constructor_path, _, _ = APPLICATION_BACKBONES[name]
    if constructor_path.startswith("vsa_tf.pretrained."):
        return efficientnet_lite.build_efficientnet_lite0(weights_path, include_top=False, input_shape=input_shape)
    constructor = getattr(keras.applications, constructor_path.rsplit(".", 1)[1])
    network = constructor(include_top=False, weights=None, input_shape=input_shape)
    if weights_path:
        network.load_weights(weights_path)
    return network


class _TappedNetworks:
    """{layer name: functional view of a backbone's network with two outputs}, untracked by Keras."""

    def __init__(self):
        self.networks = {}


@keras.saving.register_keras_serializable(package="vsa_tf")
class Backbone(keras.layers.Layer):
    """A CNN that maps 0..255 images to a spatial feature map.

    "simple" is a small VGG-style net (3x3 convolutions + ReLU, a 2x2 max-pool after every block but the
    last) trained from scratch; the other names are `keras.applications` networks built with
    `weights=None` whose weights are read from `weights_path` (a local `.h5` / `.weights.h5` file of the
    `include_top=False` network), or keras-cv's EfficientNet-Lite0 with the converted ImageNet weights of
    `vsa_tf.pretrained.efficientnet_lite` — nothing is downloaded.

    Args:
        architecture: one of `BACKBONE_NAMES`.
        weights_path: optional local weights file for an application network.
        frozen: if True the network's weights are not trained (and batch norm runs in inference mode).
        filters: channels of each block of the "simple" net; the stride is 2 ** (len(filters) - 1).
        input_shape_hint: (height, width, 3) for the application networks; None dimensions allowed.
        **kwargs: base layer arguments.

    Call arguments:
        images: float [B, H, W, 3] in 0..255.
        training: whether dropout / batch norm run in training mode.

    Returns:
        float [B, H / stride, W / stride, C] feature map.

    Example:
    >>> backbone = Backbone("simple", filters=(4, 8))
    >>> backbone(np.zeros((2, 32, 32, 3), "float32")).shape
    TensorShape([2, 16, 16, 8])

    Reference: Girshick, "Fast R-CNN", ICCV 2015 (pooling regions from one shared feature map).
    """
    def __init__(
        self,
        architecture="simple",
        weights_path=None,
        frozen=False,
        filters=(32, 64, 128, 128),
        input_shape_hint=(None, None, 3),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if architecture not in BACKBONE_NAMES:
            raise ValueError(f"Unknown backbone {architecture!r}; expected one of {list(BACKBONE_NAMES)}")
        if not filters or any(int(count) <= 0 for count in filters):
            raise ValueError(f"filters must be a non-empty list of positive channel counts; received {filters!r}")
        self.architecture = architecture
        self.weights_path = weights_path
        self.frozen = frozen
        self.filters = tuple(int(count) for count in filters)
        self.input_shape_hint = tuple(input_shape_hint)
        # Created once, by the first `build`: `build` may run again (e.g. a model built after this layer
        # was called), and a built Keras layer cannot take new state. (Not here: an application network
        # reads its weights file, and the layers' default seeds are drawn in the order they are created.)
        self.network = None
        # Layer name -> a two-output view of `network` (its layers, no new weights), in a plain holder:
        # Keras would track a dict attribute and refuse new entries once the layer is built.
        self._tapped = _TappedNetworks()

    def _simple_network(self):
        network = keras.Sequential(name="simple_convnet")
        for index, count in enumerate(self.filters):
            network.add(keras.layers.Conv2D(count, 3, padding="same", activation="relu", name=f"conv{index + 1}"))
            if index < len(self.filters) - 1:
                network.add(keras.layers.MaxPooling2D(2, name=f"pool{index + 1}"))
        return network

    @property
    def stride(self):
        if self.architecture == "simple":
            return 2 ** (len(self.filters) - 1)
        _, feature_layer, _ = APPLICATION_BACKBONES[self.architecture]
        return 16 if feature_layer else 32

    def layer_at_stride(self, stride):
        """The name of the layer whose map `maps` taps at `stride`, or None for the output's own stride.

        Raises:
            ValueError: a stride the backbone has no tap for (it names the strides it has).
        """
        stride = int(stride)
        if stride == self.stride:
            return None
        if self.architecture == "simple":
            block = stride.bit_length()  # conv{k} is at stride 2 ** (k - 1), before its max-pool
            if stride >= 1 and stride & (stride - 1) == 0 and block <= len(self.filters):
                return f"conv{block}"
            available = [2**index for index in range(len(self.filters))]
        else:
            if stride == 16 and self.architecture in STRIDE_16_LAYERS:
                return STRIDE_16_LAYERS[self.architecture]
            available = [self.stride] + ([16] if self.architecture in STRIDE_16_LAYERS else [])
        raise ValueError(f"the {self.architecture} backbone has maps at strides {sorted(available)}, received stride {stride!r}")

    def maps(self, images, layer_name, training=None):
        """(the map of layer `layer_name`, the output map) of 0..255 images, from one pass of the network.

        `layer_name` is a layer of the network (`layer_at_stride` gives the stride-16 one); None returns
        the output map twice.
        """
        if layer_name is None:
            output = self(images, training=training)
            return output, output
        if not self.built:
            self.build(tuple(images.shape))
        if layer_name not in self._tapped.networks:
            self._tapped.networks[layer_name] = self._tapped_network(layer_name)
        images = ops.cast(images, self.compute_dtype)
        tapped, output = self._tapped.networks[layer_name](self._scale(images), training=False if self.frozen else training)
        return tapped, output

    def _tapped_network(self, layer_name):
        """A functional model over the network's own layers returning [map of `layer_name`, output]."""
        network = self.network
        inner = None
        if self.architecture == "efficientnet_lite_b0":  # pixel scaling, then keras-cv's backbone nested as one layer
            inner = network.get_layer(efficientnet_lite.BACKBONE_NAME)
        holder = inner if inner is not None else network
        try:
            tapped = holder.get_layer(layer_name).output
        except ValueError:
            raise ValueError(f"the {self.architecture} backbone has no layer {layer_name!r}") from None
        two_outputs = keras.Model(holder.inputs[0], [tapped, holder.outputs[0]], name=f"{holder.name}_tapped")
        if inner is None:
            return two_outputs
        inputs = keras.Input(shape=tuple(network.inputs[0].shape[1:]))
        return keras.Model(inputs, two_outputs(network.get_layer(efficientnet_lite.SCALING_NAME)(inputs)), name=f"{network.name}_tapped")

    def build(self, input_shape):
        if self.network is None:
            # Loads `weights_path` here: a model holding this layer must build it in its own `build`
            # (eagerly), not leave it to Keras's symbolic trace of `call`, where the loaded values would be
            # discarded (see `CaptionModel.build`).
            self.network = self._create_network(input_shape)
        self.network.trainable = not self.frozen
        self.built = True

    def _create_network(self, input_shape):
        if self.architecture == "simple":
            network = self._simple_network()
            network.build(tuple(input_shape))
            if self.weights_path:
                # A simple network trained by another run (`vsa_tf.jobs.alignment.save_backbone_weights`).
                try:
                    network.load_weights(self.weights_path)
                except (OSError, ValueError) as error:
                    raise ValueError(
                        f"Could not load simple-backbone weights from {self.weights_path!r} (filters {self.filters}): "
                        f"{_short_error(error)}"
                    ) from None
            return network
        try:
            network = _construct_application(self.architecture, self.input_shape_hint, self.weights_path)
        except (OSError, ValueError) as error:
            raise ValueError(f"Could not load {self.architecture} weights from {self.weights_path!r}: {_short_error(error)}") from None
        _, feature_layer, _ = APPLICATION_BACKBONES[self.architecture]
        if feature_layer:
            network = keras.Model(network.inputs, network.get_layer(feature_layer).output, name=network.name)
        return network

    def _scale(self, images):
        _, _, mode = APPLICATION_BACKBONES.get(self.architecture, (None, None, "unit"))
        if mode == "unit":  # the simple net: 0..1
            return images / 255.0
        if mode == "caffe":  # RGB -> BGR, minus the ImageNet means
            return ops.flip(images, axis=-1) - ops.convert_to_tensor(_CAFFE_MEANS_BGR, dtype=images.dtype)
        if mode == "tf":  # -1..1
            return images / 127.5 - 1.0
        return images  # EfficientNet rescales inside the network

    def call(self, images, training=None):
        images = ops.cast(images, self.compute_dtype)
        return self.network(self._scale(images), training=False if self.frozen else training)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.architecture == "simple":
            stride = self.stride
            return (
                batch,
                None if height is None else height // stride,
                None if width is None else width // stride,
                self.filters[-1],
            )
        return tuple(self.network.compute_output_shape(tuple(input_shape)))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "architecture": self.architecture,
                "weights_path": self.weights_path,
                "frozen": self.frozen,
                "filters": list(self.filters),
                "input_shape_hint": list(self.input_shape_hint),
            }
        )
        return config


def build_backbone(name="simple", weights_path=None, trainable=True, input_shape=(None, None, 3), filters=(32, 64, 128, 128)):
    """Returns a `Backbone` layer: `name` in `BACKBONE_NAMES`, weights from a local file, frozen if not `trainable`."""
    return Backbone(
        architecture=name,
        weights_path=weights_path,
        frozen=not trainable,
        filters=filters,
        input_shape_hint=input_shape,
    )


def save_backbone_weights(model_or_backbone, path):
    """Saves the built-in "simple" CNN of a model (or a `Backbone` itself) as a `.weights.h5` file, atomically.

    Another model built with the same `filters` and `weights_path=path` then starts from this CNN (the
    paper's captioner starts from a trained CNN).

    Args:
        model_or_backbone: a `Backbone`, or a Keras model or layer holding exactly the one to save
            (the first found is saved).
        path: the file to write; it must end with `.weights.h5`.

    Returns:
        `path`.

    Raises:
        ValueError: when `path` has another suffix, when there is no backbone (a cached-feature model),
            or when the backbone is an application network (its weights already come from its own file).
    """
    if not str(path).endswith(".weights.h5"):
        raise ValueError(f"out_path must end with .weights.h5, received {path!r}")
    if isinstance(model_or_backbone, Backbone):
        backbones = [model_or_backbone]
    else:
        backbones = [layer for layer in model_or_backbone._flatten_layers() if isinstance(layer, Backbone)]
    if not backbones:
        raise ValueError(f"{type(model_or_backbone).__name__} has no CNN backbone to save (a cached-feature model?)")
    if backbones[0].architecture != "simple":
        raise ValueError(
            f"the backbone is {backbones[0].architecture!r}; only the built-in 'simple' CNN is saved this way "
            "(an application backbone already comes from its own weights file)"
        )
    atomic_save_weights(backbones[0].network, path)
    return path
