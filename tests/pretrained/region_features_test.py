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
