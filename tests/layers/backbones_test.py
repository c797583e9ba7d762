import keras
import numpy as np
import pytest

from tests.layer_test_helper import run_layer_test
from vsa_tf.layers.backbones import Backbone, build_backbone


def test_simple_backbone_layer():
    run_layer_test(
        Backbone,
        {"architecture": "simple", "filters": (2, 3, 4)},
        np.random.uniform(0, 255, (2, 16, 16, 3)).astype("float32"),
        (2, 4, 4, 4),
        expected_num_trainable_weights=6,
    )


def test_frozen_simple_backbone_has_no_trainable_weights():
    backbone = build_backbone("simple", trainable=False, filters=(2, 3))
    backbone(np.zeros((1, 8, 8, 3), "float32"))
    assert backbone.trainable_weights == []
    assert len(backbone.non_trainable_weights) == 4


def test_application_backbone_loads_local_weights(tmp_path):
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "mobilenet.weights.h5")
    source.save_weights(path)
    backbone = build_backbone("mobilenet_v2", weights_path=path, trainable=False, input_shape=(32, 32, 3))
    images = np.random.uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    output = backbone(images)
    assert tuple(output.shape) == (1, 1, 1, 1280)
    expected = source(images / 127.5 - 1.0, training=False)
    np.testing.assert_allclose(np.asarray(output), np.asarray(expected), rtol=1e-4, atol=1e-4)
    assert backbone.trainable_weights == []


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="'alexnet'"):
        Backbone("alexnet")
    with pytest.raises(ValueError, match="Could not load simple-backbone weights from 'x.h5'"):
        Backbone("simple", weights_path="x.h5")(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="Could not load vgg16 weights from 'missing.h5'"):
        build_backbone("vgg16", weights_path="missing.h5", input_shape=(32, 32, 3))(np.zeros((1, 32, 32, 3), "float32"))


def test_efficientnet_lite_backbone_builds_offline():
    backbone = build_backbone("efficientnet_lite_b0", trainable=False, input_shape=(64, 64, 3))
    output = backbone(np.random.uniform(0, 255, (1, 64, 64, 3)).astype("float32"))
    assert tuple(output.shape) == (1, 2, 2, 1280)
    assert backbone.stride == 32 and backbone.trainable_weights == []


def test_build_is_idempotent():
    backbone = Backbone("simple", filters=(2, 3))
    backbone(np.zeros((1, 8, 8, 3), "float32"))
    network, weights = backbone.network, list(backbone.weights)
    backbone.build((None, 8, 8, 3))
    assert backbone.network is network
    assert [weight.path for weight in backbone.weights] == [weight.path for weight in weights]


def test_alignment_model_fits_after_its_region_encoder_was_called():
    from vsa_tf.config import ImageEncoderConfig
    from vsa_tf.models.alignment_model import AlignmentModel

    model = AlignmentModel(
        vocabulary_size=10,
        region_dim=4,
        hidden_dim=3,
        embedding_dim=3,
        image_shape=(16, 16),
        image_encoder=ImageEncoderConfig(filters=(2, 3), pool_size=1),
    )
    batch = model.dummy_batch()
    model.region_encoder(batch)
    region_weights = [weight.path for weight in model.region_encoder.weights]
    model.compile_for_training()
    history = model.fit(batch, epochs=1, verbose=0)
    assert [weight.path for weight in model.region_encoder.weights] == region_weights
    assert np.isfinite(history.history["loss"][0])


def test_simple_backbone_reuses_saved_weights_frozen(tmp_path):
    import numpy as np

    from vsa_tf.layers.backbones import Backbone

    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    trained = Backbone("simple", filters=(4, 8))
    expected = np.asarray(trained(images))
    path = str(tmp_path / "cnn.weights.h5")
    trained.network.save_weights(path)
    reused = Backbone("simple", filters=(4, 8), weights_path=path, frozen=True)
    np.testing.assert_allclose(np.asarray(reused(images)), expected, atol=1e-6)
    assert reused.trainable_weights == []


def test_simple_backbone_weights_of_another_shape_are_named(tmp_path):
    import numpy as np
    import pytest

    from vsa_tf.layers.backbones import Backbone

    path = str(tmp_path / "cnn.weights.h5")
    source = Backbone("simple", filters=(4, 8))
    source(np.zeros((1, 8, 8, 3), "float32"))
    source.network.save_weights(path)
    with pytest.raises(ValueError, match="Could not load simple-backbone weights"):
        Backbone("simple", filters=(6, 8), weights_path=path)(np.zeros((1, 8, 8, 3), "float32"))


def test_maps_taps_a_layer_and_the_output_from_one_pass():
    backbone = Backbone("simple", filters=(2, 3, 4))
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    output = np.asarray(backbone(images))
    assert [backbone.layer_at_stride(stride) for stride in (1, 2, 4)] == ["conv1", "conv2", None]
    tapped, same_output = backbone.maps(images, "conv2")
    assert tuple(tapped.shape) == (2, 8, 8, 3)
    np.testing.assert_allclose(np.asarray(same_output), output, rtol=1e-6)
    weight_count = len(backbone.weights)
    assert backbone.maps(images, None)[0].shape == output.shape and len(backbone.weights) == weight_count  # no new weights
    with pytest.raises(ValueError, match=r"the simple backbone has maps at strides \[1, 2, 4\], received stride 16"):
        backbone.layer_at_stride(16)
    with pytest.raises(ValueError, match="the simple backbone has no layer 'conv9'"):
        backbone.maps(images, "conv9")


def test_efficientnet_lite_taps_its_last_stride_16_map():
    backbone = build_backbone("efficientnet_lite_b0", trainable=False, input_shape=(64, 64, 3))
    images = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    layer = backbone.layer_at_stride(16)
    tapped, output = backbone.maps(images, layer)
    assert layer == "block6a_expand_activation" and tuple(tapped.shape) == (1, 4, 4, 672)
    np.testing.assert_allclose(np.asarray(output), np.asarray(backbone(images)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"has maps at strides \[16, 32\], received stride 8"):
        backbone.layer_at_stride(8)
