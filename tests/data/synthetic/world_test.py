import collections
import os

import pytest
from PIL import Image

from tests.data.synthetic.world_files import SPLIT_COUNTS, WORLD_SETTINGS, read_world
from tests.jobs.run_folder_files import file_tree
from vsa_tf.config import load_config
from vsa_tf.data import synthetic

TINY = {"num_images": None, "split_counts": (3, 1, 1), "seed": 0, "min_side": 48, "max_side": 56,
        "max_objects": 2, "sentences_per_image": 2}


def test_files_written_and_valid(world):
    images = world.dataset["images"]
    assert world.summary["images"] == len(images) == 12
    assert world.summary["splits"] == {"train": 8, "val": 2, "test": 2}
    assert collections.Counter(image["split"] for image in images) == {"train": 8, "val": 2, "test": 2}
    assert [image["imgid"] for image in images] == list(range(12))
    sentence_ids = [sentence["sentid"] for image in images for sentence in image["sentences"]]
    assert sentence_ids == list(range(60)) and world.summary["sentences"] == 60
    assert set(world.truth["images"]) == set(world.boxes) == {image["filename"] for image in images}
    for image in images:
        assert len(image["sentences"]) == 5
        assert len({tuple(sentence["tokens"]) for sentence in image["sentences"]}) >= 3
        record = world.truth["images"][image["filename"]]
        with Image.open(os.path.join(world.folder, "images", image["filename"])) as picture:
            picture.load()
            assert picture.format == "JPEG" and picture.mode == "RGB"
            assert picture.size == (record["width"], record["height"])
        assert record["width"] != record["height"]
        assert 120 <= record["width"] <= 240 and 120 <= record["height"] <= 240
        assert 1 <= len(record["objects"]) <= 4
        for sentence, truth_sentence in zip(image["sentences"], record["sentences"]):
            assert all(token == token.lower() and token.isalnum() for token in sentence["tokens"])
            assert set(truth_sentence["pos"]) <= {"DET", "ADJ", "NOUN", "ADP", "VERB", "CONJ", "ADV", "NUM", "PRON"}
    # No temporary folders are left next to the output.
    assert os.listdir(os.path.dirname(world.folder)) == ["world"]


def test_twins_and_heldout_pairs_in_the_files(world):
    splits = {image["filename"]: image["split"] for image in world.dataset["images"]}
    assert world.truth["twins"] and world.summary["twin_pairs"] == len(world.truth["twins"])
    for first, second in world.truth["twins"]:
        assert world.truth["images"][first]["twin"] == second and world.truth["images"][second]["twin"] == first
        assert splits[first] == splits[second]
    heldout = {(item["color"], item["shape"]) for item in world.truth["heldout_combinations"]}
    assert len(heldout) == 3 and world.summary["heldout_combinations"] == world.truth["heldout_combinations"]
    seen = collections.Counter()
    for filename, record in world.truth["images"].items():
        seen[splits[filename]] += any((obj["color"], obj["shape"]) in heldout for obj in record["objects"])
    assert seen == {"train": 0, "val": 2, "test": 2}  # heldout_share=1: every val/test scene, never a train one
    assert world.summary["heldout_images"] == {"train": 0, "val": 2, "test": 2}


def test_deterministic_for_a_seed(world, tmp_path):
    again = str(tmp_path / "again")
    synthetic.generate_world(again, **WORLD_SETTINGS)
    assert file_tree(again) == file_tree(world.folder)
    other = str(tmp_path / "other")
    synthetic.generate_world(other, num_images=12, seed=4, split_counts=SPLIT_COUNTS)
    assert read_world(other)[0] != world.dataset


def test_explicit_heldout_and_splits(tmp_path):
    summary = synthetic.generate_world(
        str(tmp_path / "w"),
        num_images=None,
        split_counts={"train": 6, "test": 3},
        heldout_combinations=[("red", "circle"), {"color": "blue", "shape": "star"}],
        twin_fraction=0.0,
        max_boxes=6,
        min_side=48,
        max_side=64,
    )
    _, truth, boxes = read_world(str(tmp_path / "w"))
    assert summary["splits"] == {"train": 6, "val": 0, "test": 3}
    assert truth["heldout_combinations"] == [{"color": "red", "shape": "circle"}, {"color": "blue", "shape": "star"}]
    assert truth["twins"] == [] and all(record["twin"] is None for record in truth["images"].values())
    assert all(len(image_boxes) <= 6 for image_boxes in boxes.values())


def test_refuses_to_overwrite(tmp_path):
    folder = tmp_path / "world"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        synthetic.generate_world(str(folder), **TINY)
    assert os.listdir(folder) == ["keep.txt"]
    summary = synthetic.generate_world(str(folder), overwrite=True, **TINY)
    assert summary["images"] == 5
    assert sorted(os.listdir(folder)) == ["boxes.json", "dataset.json", "images", "truth.json", "world_config.json"]
    assert sorted(os.listdir(tmp_path)) == ["world"]
    empty = tmp_path / "empty"
    empty.mkdir()
    synthetic.generate_world(str(empty), **{**TINY, "split_counts": (2, 0, 0)})
    assert len(os.listdir(empty / "images")) == 2


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="add up to 5"):
        synthetic.generate_world(str(tmp_path / "a"), num_images=6, split_counts=(3, 1, 1))
    with pytest.raises(ValueError, match="'pink'"):
        synthetic.generate_world(str(tmp_path / "a"), num_images=6, heldout_combinations=[("pink", "circle")])
    with pytest.raises(ValueError, match="max_objects must be in \\[1, 4\\]; received 7"):
        synthetic.generate_world(str(tmp_path / "a"), num_images=6, max_objects=7)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['num_imgs'\]; .*'num_images'"):
        synthetic.generate_world(str(tmp_path / "a"), num_imgs=6)
    with pytest.raises(ValueError, match="received dict"):
        synthetic.generate_world(str(tmp_path / "a"), config={"num_images": 6})
    assert not os.path.exists(tmp_path / "a")


def test_config_json_round_trip():
    config = synthetic.SyntheticWorldConfig(
        num_images=None, split_counts=[3, 1, 1], heldout_combinations=[{"color": "red", "shape": "circle"}]
    )
    assert config.split_counts == (3, 1, 1) and config.heldout_combinations == (("red", "circle"),)
    assert synthetic.SyntheticWorldConfig.from_json(config.to_json()) == config
    by_split = synthetic.SyntheticWorldConfig(num_images=None, split_counts={"train": 2, "test": 1})
    assert synthetic.SyntheticWorldConfig.from_json(by_split.to_json()) == by_split
    assert synthetic.SyntheticWorldConfig.from_json(synthetic.SyntheticWorldConfig().to_json()).num_images == 1000


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("twin_fraction", 1.5, "SyntheticWorldConfig.twin_fraction must be in [0, 1]; received 1.5"),
        ("jpeg_quality", 0, "SyntheticWorldConfig.jpeg_quality must be in [1, 100]; received 0"),
        ("max_boxes", 2, "SyntheticWorldConfig.max_boxes must be >= max_objects (4); received 2"),
        ("min_side", 40, "received min_side=40, max_side=240"),
        ("split_counts", 5, "SyntheticWorldConfig.split_counts must be (train, val, test) counts"),
        ("num_heldout", 9, "num_heldout must be in [0, 6]; received 9"),
    ],
)
def test_config_bad_values(field, value, message):
    with pytest.raises(ValueError) as error:
        synthetic.SyntheticWorldConfig(**{field: value})
    assert message in str(error.value)


def test_config_with_overrides_and_written_beside_the_world(tmp_path):
    config = synthetic.SyntheticWorldConfig(**TINY)
    first = synthetic.generate_world(str(tmp_path / "first"), config, seed=1)
    assert first["seed"] == 1 and first["images"] == 5
    written = load_config(synthetic.SyntheticWorldConfig, str(tmp_path / "first" / synthetic.CONFIG_FILENAME))
    assert written == config.replace(seed=1)
    synthetic.generate_world(str(tmp_path / "second"), written)
    assert file_tree(str(tmp_path / "second")) == file_tree(str(tmp_path / "first"))
