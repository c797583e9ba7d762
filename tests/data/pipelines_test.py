import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.helpers import image_bombs
from vsa_tf.config import DataConfig
from vsa_tf.data import features
from vsa_tf.data import pipelines
from vsa_tf.data import records as records_lib
from vsa_tf.data import text

RED, GREEN, GRAY = (220, 20, 20), (20, 200, 40), (120, 120, 120)
CONFIG = DataConfig(image_size=(32, 32), max_boxes=3, max_words=6)
VOCABULARY = text.Vocabulary(["a", "red", "square", "left", "right", "of", "green"])


def save_image(path, width, height, squares):
    """Gray image with coloured rectangles; squares: [(x0, y0, x1, y1, colour)]."""
    pixels = np.zeros((height, width, 3), np.uint8) + np.array(GRAY, np.uint8)
    for x0, y0, x1, y1, colour in squares:
        pixels[y0:y1, x0:x1] = colour
    Image.fromarray(pixels).save(path, quality=95)


@pytest.fixture
def world(tmp_path):
    # Non-square images, one PNG and one JPEG, a red square on the left and a green one on the right.
    save_image(str(tmp_path / "one.png"), 60, 40, [(6, 8, 26, 32, RED), (40, 8, 56, 24, GREEN)])
    save_image(str(tmp_path / "two.jpg"), 48, 64, [(4, 30, 24, 60, RED)])
    records = [
        records_lib.ImageRecord("one.png", 10, "train", [
            records_lib.Sentence("a red square left of a green square".split()),
            records_lib.Sentence("a green square".split()),
        ]),
        records_lib.ImageRecord("two.jpg", 20, "train", [records_lib.Sentence("a red square".split())]),
    ]
    boxes = {"one.png": np.array([[6, 8, 26, 32], [40, 8, 56, 24]], np.float32)}
    return records, str(tmp_path), boxes


def mean_colour(images, boxes, box_index=0):
    crops = tf.image.crop_and_resize(images, boxes, box_indices=tf.fill([tf.shape(boxes)[0]], box_index), crop_size=[6, 6])
    return crops.numpy().mean(axis=(1, 2))


def assert_colour(colour, expected):
    """The crop's mean colour is nearest to ``expected`` among the palette (edges blur under resizing)."""
    palette = {RED: "red", GREEN: "green", GRAY: "gray"}
    nearest = min(palette, key=lambda candidate: np.linalg.norm(np.array(candidate) - colour))
    assert palette[nearest] == palette[expected], (colour, expected)
    assert np.abs(colour - np.array(expected)).max() < 40, (colour, expected)


def test_images_dataset_shapes_masks_and_order(world):
    records, root, boxes = world
    batch = next(iter(pipelines.images_dataset(records, root, boxes, CONFIG, batch_size=2)))
    assert batch["images"].shape == (2, 32, 32, 3) and batch["images"].dtype == tf.float32
    assert batch["boxes"].shape == (2, 4, 4) and batch["boxes"].dtype == tf.float32
    assert batch["region_mask"].dtype == tf.bool
    np.testing.assert_array_equal(batch["region_mask"].numpy(), [[1, 1, 1, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(batch["image_index"].numpy(), [0, 1])
    np.testing.assert_allclose(batch["boxes"][:, 0].numpy(), [[0, 0, 1, 1]] * 2)
    np.testing.assert_array_equal(batch["boxes"][1, 1:].numpy(), np.zeros((3, 4)))
    # one.png is 60 x 40: box [6, 8, 26, 32] -> [8/40, 6/60, 32/40, 26/60].
    np.testing.assert_allclose(batch["boxes"][0, 1].numpy(), [0.2, 0.1, 0.8, 26 / 60], atol=1e-6)
    assert 0 <= batch["images"].numpy().min() and batch["images"].numpy().max() <= 255


def test_cropping_the_pipeline_boxes_finds_the_square_colours(world):
    records, root, boxes = world
    batch = next(iter(pipelines.images_dataset(records, root, boxes, CONFIG, batch_size=2)))
    colours = mean_colour(batch["images"][:1], batch["boxes"][0, 1:3])
    assert_colour(colours[0], RED)
    assert_colour(colours[1], GREEN)
    # The whole-image region is mostly gray.
    assert_colour(mean_colour(batch["images"][:1], batch["boxes"][0, :1])[0], GRAY)


def test_sentences_dataset():
    batches = list(pipelines.sentences_dataset(["A red square!", "green", "left of"], VOCABULARY, CONFIG, 2))
    assert [batch["tokens"].shape[0] for batch in batches] == [2, 1]
    assert batches[0]["tokens"].dtype == tf.int32 and batches[0]["token_mask"].dtype == tf.bool
    np.testing.assert_array_equal(batches[0]["tokens"][0].numpy(), [4, 5, 6, 0, 0, 0])
    np.testing.assert_array_equal(batches[0]["token_mask"][1].numpy(), [1, 0, 0, 0, 0, 0])


def test_ranking_dataset_one_pair_per_sentence_reshuffled(world):
    records, root, boxes = world
    dataset = pipelines.ranking_dataset(records, root, boxes, VOCABULARY, CONFIG, batch_size=3, seed=3)
    epochs = [next(iter(dataset)) for _ in range(4)]
    batch = epochs[0]
    assert batch["tokens"].shape == (3, 6) and batch["tokens"].dtype == tf.int32
    assert batch["image_id"].dtype == tf.int64 and batch["images"].shape == (3, 32, 32, 3)
    assert batch["boxes"].shape == (3, 4, 4) and batch["region_mask"].shape == (3, 4)
    for epoch in epochs:
        pairs = sorted(
            (int(image_id), tuple(VOCABULARY.decode(tokens)))
            for image_id, tokens in zip(epoch["image_id"].numpy(), epoch["tokens"].numpy())
        )
        assert pairs == [
            (10, ("a", "green", "square")),
            (10, ("a", "red", "square", "left", "of", "a")),  # truncated to max_words
            (20, ("a", "red", "square")),
        ]
    orders = {tuple(epoch["image_id"].numpy()) + tuple(epoch["tokens"][:, 1].numpy()) for epoch in epochs}
    assert len(orders) > 1
    mask = batch["token_mask"].numpy()
    np.testing.assert_array_equal(mask, batch["tokens"].numpy() != 0)
    # Each pair's image side is its own image's (two.jpg has no boxes: only the whole image).
    for image_id, region_mask in zip(batch["image_id"].numpy(), batch["region_mask"].numpy()):
        assert region_mask.sum() == (3 if image_id == 10 else 1)


def test_caption_dataset_whole_image_and_start_end(world):
    records, root, _ = world
    batch = next(iter(pipelines.caption_dataset(records, root, VOCABULARY, CONFIG, batch_size=3, shuffle=False)))
    assert batch["boxes"].shape == (3, 1, 4)
    np.testing.assert_allclose(batch["boxes"].numpy(), [[[0, 0, 1, 1]]] * 3)
    np.testing.assert_array_equal(batch["region_mask"].numpy(), [[True]] * 3)
    assert batch["tokens"].shape == (3, 8) and batch["tokens"].dtype == tf.int32 and "token_mask" not in batch
    assert batch["image_id"].dtype == tf.int64 and batch["images"].dtype == tf.float32
    np.testing.assert_array_equal(batch["tokens"][0].numpy(), [2, 4, 5, 6, 7, 9, 4, 3])
    np.testing.assert_array_equal(batch["tokens"][1].numpy(), [2, 4, 10, 6, 3, 0, 0, 0])
    np.testing.assert_array_equal(batch["image_id"].numpy(), [10, 10, 20])


def test_region_caption_dataset_uses_snippet_box(world):
    records, root, _ = world
    snippets = [
        {"filename": "two.jpg", "sentence": 0, "start": 0, "end": 3, "words": ["a", "red", "square"], "region": 1, "box": [4, 30, 24, 60]},
        {"filename": "one.png", "sentence": 0, "start": 5, "end": 8, "words": ["a", "green", "square"], "region": 2, "box": [40, 8, 56, 24]},
    ]
    batch = next(iter(pipelines.region_caption_dataset(snippets, records, root, VOCABULARY, CONFIG, 2, shuffle=False)))
    assert batch["boxes"].shape == (2, 1, 4)
    np.testing.assert_array_equal(batch["tokens"].numpy(), [[2, 4, 5, 6, 3, 0, 0, 0], [2, 4, 10, 6, 3, 0, 0, 0]])
    assert_colour(mean_colour(batch["images"][:1], batch["boxes"][0])[0], RED)
    assert_colour(mean_colour(batch["images"][1:], batch["boxes"][1])[0], GREEN)
    with pytest.raises(ValueError, match="snippet 0: filename 'nope.jpg' is not among the records"):
        pipelines.region_caption_dataset([dict(snippets[0], filename="nope.jpg")], records, root, VOCABULARY, CONFIG, 2)
    with pytest.raises(ValueError, match=r"snippets: snippet 0: `box` must have x1 >= x0 and y1 >= y0, received \[5, 5, 1, 9\]"):
        pipelines.region_caption_dataset([dict(snippets[0], box=[5, 5, 1, 9])], records, root, VOCABULARY, CONFIG, 2)


SNIPPET = {"filename": "a.jpg", "sentence": 0, "start": 0, "end": 2, "words": ["red", "circle"], "region": 1, "box": [1, 2, 10, 12]}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"box": [1, "a", 2, 3]}, r"`box` must be 4 finite numbers \[x0, y0, x1, y1\], received \[1, 'a', 2, 3\]"),
        ({"box": [1, 2, float("nan"), 3]}, r"`box` must be 4 finite numbers .*, received \[1, 2, nan, 3\]"),
        ({"box": [0, 0, 10**400, 3]}, r"`box` must be 4 finite numbers"),
        ({"box": [0, 0, 1e300, 3]}, r"`box` values must fit in float32, received \[0, 0, 1e\+300, 3\]"),
        ({"box": [0, 0, 0, 3]}, r"`box` must have x1 > x0 and y1 > y0, received \[0, 0, 0, 3\]"),
        ({"box": [True, 0, 1, 3]}, r"`box` must be 4 finite numbers"),
        ({"box": "1 2 3 4"}, r"`box` must be 4 finite numbers"),
        ({"words": "red circle"}, r"`words` must be a list of strings, received 'red circle'"),
        ({"words": ["red", 7]}, r"`words` must be a list of strings, received \['red', 7\]"),
        ({"filename": 3}, r"`filename` must be a non-empty string, received 3"),
        ({"filename": ""}, r"`filename` must be a non-empty string, received ''"),
        ({"region": -1}, r"`region` must be an integer >= 0, received -1"),
    ],
)
def test_load_snippets_checks_every_field_by_name(tmp_path, change, message):
    """A bad snippet, from a file or a list, is a ValueError naming the file, the entry, the field and the value."""
    path = tmp_path / "snippets.json"
    path.write_text(json.dumps([SNIPPET, dict(SNIPPET, **change)]))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: snippet 1( \(a\.jpg\))?: {message}"):
        pipelines.load_snippets(str(path))
    with pytest.raises(ValueError, match=rf"^snippets: snippet 1( \(a\.jpg\))?: {message}"):
        pipelines.load_snippets([SNIPPET, dict(SNIPPET, **change)])


def test_load_snippets_needs_every_field_in_a_file_and_the_read_ones_in_a_list(tmp_path):
    path = tmp_path / "snippets.json"
    for bad, message in (({"x": 1}, "expected a list of snippets, received dict"), ([3], r"snippet 0: expected a JSON object")):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {message}"):
            pipelines.load_snippets(str(path))
    partial = {key: SNIPPET[key] for key in pipelines.REGION_CAPTION_FIELDS}
    path.write_text(json.dumps([partial]))
    with pytest.raises(ValueError, match=r"snippet 0: missing field\(s\) \['sentence', 'start', 'end', 'region'\]"):
        pipelines.load_snippets(str(path))
    assert pipelines.load_snippets([partial]) == [partial]
    with pytest.raises(ValueError, match=r"^snippets: snippet 0: missing field\(s\) \['box'\]"):
        pipelines.load_snippets([{"filename": "a.jpg", "words": ["red"]}])
    path.write_text(json.dumps([SNIPPET]))
    assert pipelines.load_snippets(str(path)) == [SNIPPET]


def test_flip_swaps_left_right_with_the_image(world):
    records, root, boxes = world
    plain = next(iter(pipelines.ranking_dataset(records[:1], root, boxes, VOCABULARY, CONFIG, 2, shuffle=False)))
    flipped_count = 0
    for seed in range(6):
        dataset = pipelines.ranking_dataset(records[:1], root, boxes, VOCABULARY, CONFIG, 2, shuffle=False, seed=seed, flip=True)
        batch = next(iter(dataset))
        for row in range(2):
            if np.array_equal(batch["images"][row].numpy(), plain["images"][row].numpy()):
                np.testing.assert_array_equal(batch["tokens"][row], plain["tokens"][row])
                np.testing.assert_allclose(batch["boxes"][row], plain["boxes"][row])
                continue
            flipped_count += 1
            np.testing.assert_allclose(batch["images"][row].numpy(), plain["images"][row].numpy()[:, ::-1])
            words = VOCABULARY.decode(batch["tokens"][row].numpy())
            expected = [{"left": "right", "right": "left"}.get(word, word) for word in VOCABULARY.decode(plain["tokens"][row].numpy())]
            assert words == expected
            # The red square is now on the right: its flipped box still crops red.
            colour = mean_colour(batch["images"][row : row + 1], batch["boxes"][row, 1:2])[0]
            assert_colour(colour, RED)
    assert 0 < flipped_count < 12


def fake_store(folder, filenames, regions=4, dims=5):
    """A features.FeatureStore in `folder`: features[i] = the filename's index everywhere, last region masked."""
    mask = np.arange(regions) < regions - 1
    examples = ((name, np.full((regions, dims), row, np.float32), mask) for row, name in enumerate(filenames))
    features.write_store(str(folder), examples, len(filenames), regions, dims)
    return features.FeatureStore(str(folder))


def test_cached_mode(world, tmp_path):
    records, root, boxes = world
    store = fake_store(tmp_path / "features", ["two.jpg", "one.png"])  # not the records' order
    batch = next(iter(pipelines.ranking_dataset(records, root, boxes, VOCABULARY, CONFIG, 3, shuffle=False, features=store)))
    assert set(batch) == {"region_features", "region_mask", "tokens", "token_mask", "image_id"}
    assert batch["region_features"].shape == (3, 4, 5)
    np.testing.assert_array_equal(batch["region_features"][:, 0, 0].numpy(), [1, 1, 0])
    caption = next(iter(pipelines.caption_dataset(records, root, VOCABULARY, CONFIG, 3, shuffle=False, features=store)))
    assert caption["region_features"].shape == (3, 1, 5) and caption["region_mask"].shape == (3, 1)
    images = next(iter(pipelines.images_dataset(records, root, boxes, CONFIG, 2, features=store)))
    assert set(images) == {"region_features", "region_mask", "image_index"}
    with pytest.raises(ValueError, match="flip=True needs pixel mode"):
        pipelines.ranking_dataset(records, root, boxes, VOCABULARY, CONFIG, 3, features=store, flip=True)


def test_empty_records(world):
    _, root, _ = world
    batches = list(pipelines.ranking_dataset([], root, None, VOCABULARY, CONFIG, 2))
    assert batches == []


def test_escaping_filename_rejected(world):
    records, root, boxes = world
    bad = [records_lib.ImageRecord("../x.jpg", 1, "train", [records_lib.Sentence(["a"])])]
    with pytest.raises(ValueError, match=r"\.\./x\.jpg: filename escapes the image root"):
        pipelines.images_dataset(bad, root, None, CONFIG, 2)


def test_unicode_filenames(tmp_path):
    os.makedirs(tmp_path / "café")
    save_image(str(tmp_path / "café" / "ünï.jpg"), 20, 10, [(0, 0, 10, 10, RED)])
    records = [records_lib.ImageRecord("café/ünï.jpg", 0, "test", [records_lib.Sentence(["a"])])]
    boxes = {"café/ünï.jpg": np.array([[0, 0, 10, 10]], np.float32)}
    batch = next(iter(pipelines.images_dataset(records, str(tmp_path), boxes, CONFIG, 1)))
    assert_colour(mean_colour(batch["images"], batch["boxes"][0, 1:2])[0], RED)


@pytest.mark.parametrize("name, data", [("bomb.png", image_bombs.png_bomb()), ("bomb.jpg", image_bombs.jpeg_bomb())])
def test_pipelines_refuse_a_decompression_bomb_by_path_before_decoding(world, name, data):
    """A tiny file declaring 30,000 x 30,000 pixels fails at its element, named by path, from its header alone."""
    records, root, _ = world
    (Path(root) / name).write_bytes(data)
    records = records + [records_lib.ImageRecord(name, 30, "train", [records_lib.Sentence(["a", "red", "square"])])]
    message = rf"(?s){re.escape(name)}.{{0,12}}declares.{{0,12}}900000000.{{0,12}}pixels, over the limit of MAX_IMAGE_PIXELS = 50000000; refused before decoding"
    iterator = iter(pipelines.images_dataset(records, root, None, CONFIG, batch_size=1))
    assert next(iterator)["images"].shape == (1, 32, 32, 3)
    assert next(iterator)["images"].shape == (1, 32, 32, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        next(iterator)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        list(pipelines.caption_dataset(records[2:], root, VOCABULARY, CONFIG, batch_size=1, shuffle=False))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"(?s)element.{{0,12}}{re.escape(name)}.{{0,12}}declares"):
        pipelines.decode_and_resize_bytes(tf.constant(data), (8, 8), name=name)  # eager: the same check


def test_decode_and_resize_bytes_keeps_images_under_the_limit():
    image, height, width = pipelines.decode_and_resize_bytes(tf.constant(image_bombs.uniform_jpeg(40, 30)), (8, 6))
    assert image.shape == (8, 6, 3) and (int(height), int(width)) == (30, 40)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)\(unnamed\).{0,12}declares"):
        pipelines.decode_and_resize_bytes(tf.constant(image_bombs.png_bomb(10_000, 10_000)), (8, 8))


def test_sentence_table_encodes_as_encode_sentences_does(tmp_path):
    raws = ["A Red circle, left of the big blue square!", "", "Zebra crossing", "Two red dogs"]
    data = {"images": [{"filename": "a.jpg", "split": "train", "sentences": [{"raw": raw} for raw in raws[:2]]},
                       {"filename": "b.jpg", "split": "train", "sentences": [{"raw": raw} for raw in raws[2:]]}]}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    from vsa_tf.data import readers

    viewed = readers.read_dataset(str(path)).records
    listed = [records_lib.ImageRecord(record.filename, 0, "train", [records_lib.Sentence(text.tokenize_python(raw) or [], raw) for raw in raws[:2]]) for record in viewed[:1]]
    listed.append(records_lib.ImageRecord("b.jpg", 1, "train", [records_lib.Sentence(["Zebra", "CROSSING"]), records_lib.Sentence(["two", "red", "dogs"])]))
    vocabulary = text.Vocabulary.build([["red", "circle", "square", "two", "zebra"]], min_count=1)  # the rest: unknown
    expected_ids, expected_mask = text.encode_sentences(tf.constant([" ".join(text.tokenize_python(raw)) for raw in raws]), vocabulary.id_table().lookup, 5)
    for table in (pipelines.SentenceTable.of_records(viewed), pipelines.SentenceTable.of_records(listed), pipelines.SentenceTable.of_texts(raws)):
        ids, mask = table.encoder(vocabulary, 5)(tf.constant([0, 1, 2, 3], tf.int64))
        np.testing.assert_array_equal(ids.numpy(), expected_ids.numpy())  # truncated to 5, unknown words 1, padding 0
        np.testing.assert_array_equal(mask.numpy(), expected_mask.numpy())
        ids, _ = table.encoder(vocabulary, 5)(tf.constant([3, 3, 1], tf.int64))  # any rows, in any order
        np.testing.assert_array_equal(ids.numpy(), expected_ids.numpy()[[3, 3, 1]])
    assert records_lib.shared_columns(viewed) is viewed[0].sentences.columns and records_lib.shared_columns(listed) is None
    empty = pipelines.SentenceTable.of_texts([""])
    ids, mask = empty.encoder(vocabulary, 3)(tf.constant([0], tf.int64))
    assert ids.numpy().tolist() == [[0, 0, 0]] and not mask.numpy().any()
