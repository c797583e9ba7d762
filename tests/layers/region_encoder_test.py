import numpy as np
import pytest

from tests.layer_test_helper import run_layer_test
from tests.layers.region_features_test import _batch
from vsa_tf.config import ImageEncoderConfig
from vsa_tf.layers.region_encoder import RegionEncoder

CACHED = ImageEncoderConfig(mode="cached")


def test_cached_mode_layer():
    features = np.random.rand(2, 3, 5).astype("float32")
    mask = np.array([[True, True, False], [True, False, False]])
    vectors, output_mask = run_layer_test(
        RegionEncoder,
        {"output_dim": 4, "image_encoder": CACHED.to_dict(), "dropout": 0.1},
        {"region_features": features, "region_mask": mask},
        ((2, 3, 4), (2, 3)),
        expected_num_trainable_weights=2,
    )
    np.testing.assert_array_equal(np.asarray(output_mask), mask)
    np.testing.assert_array_equal(np.asarray(vectors)[~mask], 0.0)


def test_pixel_mode_layer():
    run_layer_test(
        RegionEncoder,
        {"output_dim": 4, "image_encoder": ImageEncoderConfig(mode="pixels", filters=(2, 3)).to_dict()},
        _batch(),
        ((2, 3, 4), (2, 3)),
        expected_num_trainable_weights=6,
    )


def test_projection_matches_equation_one():
    encoder = RegionEncoder(output_dim=2, image_encoder=CACHED)
    features = np.random.rand(1, 2, 3).astype("float32")
    vectors, _ = encoder({"region_features": features, "region_mask": np.ones((1, 2), bool)})
    kernel, bias = (np.asarray(weight) for weight in encoder.projection.weights)
    np.testing.assert_allclose(np.asarray(vectors), features @ kernel + bias, rtol=1e-5)


def test_missing_keys_and_bad_arguments():
    with pytest.raises(ValueError, match="region_features"):
        RegionEncoder(output_dim=2, image_encoder=CACHED)({"region_mask": np.ones((1, 2), bool), "images": np.zeros((1, 8, 8, 3))})
    with pytest.raises(ValueError, match="ImageEncoderConfig.mode must be one of .* received 'features'"):
        RegionEncoder(output_dim=2, image_encoder={"mode": "features"})
