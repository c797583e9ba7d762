import numpy as np

from tests.pretrained.tiny_efficientnet import tiny_feature_model
from tests.pretrained.tiny_efficientnet import write_tiny_weights
from vsa_tf.pretrained import region_features


def test_extractor_pools_every_real_region_from_one_feature_map(tmp_path):
    feature_model = tiny_feature_model(write_tiny_weights(tmp_path / "tiny.weights.h5"))
    extractor = region_features.build_region_feature_extractor(None, feature_model=feature_model)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    whole, corner = [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]
    boxes = np.array([[whole, corner, whole], [whole, whole, whole]], np.float32)  # [2, 3, 4] rel_yxyx
    region_mask = np.array([[True, True, False], [True, False, False]])
    features = np.asarray(extractor({"images": images, "boxes": boxes, "region_mask": region_mask}))
    assert features.shape == (2, 3, 1280)
    assert np.all(features[~region_mask] == 0) and np.all(np.abs(features[region_mask]).sum(-1) > 0)
    assert not feature_model.trainable
    # Region 0 is the whole image: RoIAlign's 4 x 4 bilinear grid over the 16 x 16 map falls exactly on
    # rows/columns 0, 5, 10, 15, and the bins are averaged.
    feature_map = feature_model.predict(images, verbose=0)  # [2, 16, 16, 1280]
    grid = feature_map[:, [0, 5, 10, 15]][:, :, [0, 5, 10, 15]]
    np.testing.assert_allclose(features[:, 0], grid.mean(axis=(1, 2)), rtol=1e-3, atol=1e-3)
    assert not np.allclose(features[0, 1], features[0, 0], atol=1e-3)  # the corner box sees less


def test_crop_mode_runs_each_region_crop_through_the_network(tmp_path):
    feature_model = tiny_feature_model(write_tiny_weights(tmp_path / "tiny.weights.h5"))
    extractor = region_features.build_region_feature_extractor(None, feature_model=feature_model, region_mode="crop", crop_size=64)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    whole, corner = [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]
    boxes = np.array([[whole, corner, whole], [corner, whole, whole]], np.float32)
    region_mask = np.array([[True, True, False], [True, True, False]])
    features = np.asarray(extractor({"images": images, "boxes": boxes, "region_mask": region_mask}))
    assert features.shape == (2, 3, 1280) and np.all(features[~region_mask] == 0)
    # The whole-image box resized to the image's own 64 x 64 is the image itself: its feature is the
    # network's map of the image, averaged; the corner crop (upsampled 2x) gives another feature.
    whole_image = feature_model.predict(images, verbose=0).mean(axis=(1, 2))
    np.testing.assert_allclose(features[0, 0], whole_image[0], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(features[1, 1], whole_image[1], rtol=1e-3, atol=1e-3)
    assert not np.allclose(features[0, 1], features[0, 0], atol=1e-2)


def test_unknown_region_mode_and_tiny_crops_are_refused():
    import pytest

    with pytest.raises(ValueError, match="region_mode must be one of .*received 'grid'"):
        region_features.build_region_feature_extractor(None, region_mode="grid")
    with pytest.raises(ValueError, match="crop_size must be >= 32.*received 8"):
        region_features.build_region_feature_extractor(None, region_mode="crop", crop_size=8)
