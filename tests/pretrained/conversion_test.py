import os

import keras
import numpy as np
import pytest

from tests.pretrained.tiny_efficientnet import NUM_CLASSES
from tests.pretrained.tiny_efficientnet import TINY_ARCHITECTURE
from tests.pretrained.tiny_efficientnet import numpy_batch_norm
from tests.pretrained.tiny_efficientnet import numpy_convolution
from tests.pretrained.tiny_efficientnet import numpy_forward
from tests.pretrained.tiny_efficientnet import relu6
from tests.pretrained.tiny_efficientnet import tiny_classifier
from tests.pretrained.tiny_efficientnet import tiny_state_dict
from vsa_tf.pretrained import conversion
from vsa_tf.pretrained import efficientnet_lite


def test_convert_maps_every_weight_of_the_model_with_matching_shapes():
    state = tiny_state_dict()
    converted = conversion.convert_state_dict(state, architecture=TINY_ARCHITECTURE)
    assert converted["stem_conv"][0].shape == (3, 3, 3, 32)
    assert converted["block2a_dwconv"][0].shape == (5, 5, 16, 1)
    assert converted["block2b_project_conv"][0].shape == (1, 1, 32, 16)
    assert converted["predictions"][0].shape == (1280, NUM_CLASSES)
    np.testing.assert_array_equal(converted["top_bn"][3], state["_bn1.running_var"])
    classifier = efficientnet_lite.build_efficientnet_lite(TINY_ARCHITECTURE, include_top=True, num_classes=NUM_CLASSES)
    conversion.assign_converted_weights(classifier, converted)  # raises if any layer is left out
    assigned = sum(len(arrays) for arrays in converted.values())
    assert assigned == len(classifier.weights)
    mapped_keys = [key for key in state if not key.endswith("num_batches_tracked")]
    assert sum(array.size for arrays in converted.values() for array in arrays) == sum(state[key].size for key in mapped_keys)


def test_keras_outputs_equal_a_numpy_reference_of_the_pytorch_network():
    state = tiny_state_dict()
    classifier = tiny_classifier(state)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    expected_map, expected_logits = numpy_forward(state, images)
    assert expected_map.shape == (2, 16, 16, 1280)  # the tiny table has stride 4
    np.testing.assert_allclose(classifier.predict(images, verbose=0), expected_logits, rtol=1e-4, atol=1e-4)
    # One layer on its own: the stem (stride-2 TF "SAME" convolution + batch norm + ReLU6).
    backbone = classifier.get_layer(efficientnet_lite.BACKBONE_NAME)
    stem = keras.Model(backbone.input, backbone.get_layer("stem_activation").output)
    scaled = (images - 127.0) / 128.0
    expected_stem = relu6(numpy_batch_norm(numpy_convolution(scaled.astype(np.float64), state["_conv_stem.weight"], 2), state, "_bn0."))
    np.testing.assert_allclose(stem.predict(scaled, verbose=0), expected_stem, rtol=1e-4, atol=1e-4)


def test_weights_file_round_trip_for_classifier_and_feature_views(tmp_path):
    state = tiny_state_dict()
    path = str(tmp_path / "tiny.weights.h5")
    classifier = conversion.convert_state_dict_to_weights_file(state, path, architecture=TINY_ARCHITECTURE)
    assert os.listdir(tmp_path) == ["tiny.weights.h5"]  # no temporary file left behind
    images = np.random.default_rng(2).uniform(0, 255, (3, 64, 64, 3)).astype(np.float32)
    expected_map, expected_logits = numpy_forward(state, images)
    reloaded = efficientnet_lite.build_efficientnet_lite(TINY_ARCHITECTURE, weights_path=path, include_top=True, num_classes=NUM_CLASSES)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), classifier.predict(images, verbose=0), atol=1e-6)
    features = efficientnet_lite.build_efficientnet_lite(TINY_ARCHITECTURE, weights_path=path, num_classes=NUM_CLASSES)
    np.testing.assert_allclose(features.predict(images, verbose=0), expected_map, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), expected_logits, rtol=1e-4, atol=1e-4)


def test_convert_rejects_missing_and_unmapped_keys():
    state = tiny_state_dict()
    del state["_blocks.1._bn1.running_var"]
    with pytest.raises(ValueError, match=r"_blocks\.1\._bn1\.running_var"):
        conversion.convert_state_dict(state, architecture=TINY_ARCHITECTURE)
    state = tiny_state_dict()
    state["_blocks.3._depthwise_conv.weight"] = np.zeros((4, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"not mapped.*_blocks\.3\._depthwise_conv\.weight"):
        conversion.convert_state_dict(state, architecture=TINY_ARCHITECTURE)
    with pytest.raises(ValueError, match="_fc.weight"):
        conversion.convert_state_dict({k: v for k, v in tiny_state_dict().items() if k != "_fc.weight"}, TINY_ARCHITECTURE)


def test_assign_rejects_a_state_dict_of_another_width():
    state = tiny_state_dict()
    state["_fc.weight"] = np.zeros((NUM_CLASSES + 1, 1280), np.float32)
    state["_fc.bias"] = np.zeros((NUM_CLASSES + 1,), np.float32)
    classifier = efficientnet_lite.build_efficientnet_lite(TINY_ARCHITECTURE, include_top=True, num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match=r"Layer 'predictions': expected weight shapes \[\(1280, 10\), \(10,\)\]"):
        conversion.assign_converted_weights(classifier, conversion.convert_state_dict(state, TINY_ARCHITECTURE))


def test_torch_reference_and_pth_reader_agree_with_keras(tmp_path):
    torch = pytest.importorskip("torch")
    state = tiny_state_dict()
    path = tmp_path / "tiny.pth"
    torch.save({name: torch.from_numpy(np.asarray(value)) for name, value in state.items()}, path)
    read = conversion.read_torch_state_dict(str(path))
    assert sorted(read) == sorted(state)
    np.testing.assert_array_equal(read["_blocks.2._depthwise_conv.weight"], state["_blocks.2._depthwise_conv.weight"])
    images = np.random.default_rng(5).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    torch_logits = conversion.torch_reference_logits(read, images, architecture=TINY_ARCHITECTURE)
    np.testing.assert_allclose(tiny_classifier(read).predict(images, verbose=0), torch_logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="State dict file not found"):
        conversion.read_torch_state_dict(str(tmp_path / "none.pth"))


def test_convert_to_weights_file_rejects_a_path_keras_cannot_write(tmp_path):
    with pytest.raises(ValueError, match=r"must end with '.weights.h5'; received '.*model.h5'"):
        conversion.convert_state_dict_to_weights_file(tiny_state_dict(), str(tmp_path / "model.h5"), architecture=TINY_ARCHITECTURE)
    assert os.listdir(tmp_path) == []
    state = {key: value for key, value in tiny_state_dict().items() if not key.startswith("_fc.")}
    with pytest.raises(ValueError, match="no '_fc.bias'; pass num_classes"):
        conversion.convert_state_dict_to_weights_file(state, str(tmp_path / "w.weights.h5"), architecture=TINY_ARCHITECTURE)
