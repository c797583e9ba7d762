import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from vsa_tf.files import atomic_save_figure  # noqa: E402


def test_atomic_save_figure_writes_the_format_of_the_extension_and_keeps_the_old_file_on_failure(tmp_path):
    figure = plt.figure(figsize=(2, 1), dpi=50)
    path = str(tmp_path / "deep" / "figure.png")
    assert atomic_save_figure(figure, path) == path
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (100, 50)
    before = open(path, "rb").read()
    with pytest.raises(ValueError, match="not supported"):
        atomic_save_figure(figure, path, format="not-a-format")
    plt.close(figure)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path / "deep") == ["figure.png"]  # no temporary file left behind
