import types

import pytest

from tests.data.synthetic.world_files import WORLD_SETTINGS, read_world
from vsa_tf.data import synthetic


@pytest.fixture(scope="package")
def world(tmp_path_factory):
    """A 12-image world (8/2/2) at default sizes, generated once for the synthetic tests."""
    folder = str(tmp_path_factory.mktemp("synthetic") / "world")
    summary = synthetic.generate_world(folder, **WORLD_SETTINGS)
    dataset, truth, boxes = read_world(folder)
    return types.SimpleNamespace(folder=folder, summary=summary, dataset=dataset, truth=truth, boxes=boxes)
