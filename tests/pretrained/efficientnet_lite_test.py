import numpy as np
import pytest

from tests.pretrained.tiny_efficientnet import NUM_CLASSES
from tests.pretrained.tiny_efficientnet import TINY_ARCHITECTURE
from vsa_tf.pretrained import efficientnet_lite


def test_block_prefixes_follow_the_lite0_stage_table():
    prefixes = efficientnet_lite.block_prefixes()
    assert len(prefixes) == 16
    assert prefixes[:4] == ["block1a_", "block2a_", "block2b_", "block3a_"]
    assert prefixes[-1] == "block7a_"
    assert efficientnet_lite.block_prefixes(TINY_ARCHITECTURE) == ["block1a_", "block2a_", "block2b_"]


def test_classifier_and_feature_views_have_the_documented_shapes():
    classifier = efficientnet_lite.build_efficientnet_lite(TINY_ARCHITECTURE, include_top=True, num_classes=NUM_CLASSES)
    features = efficientnet_lite.build_efficientnet_lite(TINY_ARCHITECTURE, num_classes=NUM_CLASSES)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    assert classifier.predict(images, verbose=0).shape == (2, NUM_CLASSES)
    assert features.predict(images, verbose=0).shape == (2, 16, 16, efficientnet_lite.FEATURE_DIM)  # tiny stride 4
    assert classifier.get_layer(efficientnet_lite.BACKBONE_NAME) is not None


def test_build_validates_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="weights file not found: .*missing.weights.h5"):
        efficientnet_lite.build_efficientnet_lite(TINY_ARCHITECTURE, weights_path=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ValueError, match="architecture must have exactly the keys"):
        efficientnet_lite.build_efficientnet_lite({"stackwise_kernel_sizes": [3]})
