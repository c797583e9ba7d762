import json
import os

import numpy as np
import pytest

from vsa_tf.config import CaptionConfig, DataConfig, ImageEncoderConfig
from vsa_tf.data.synthetic import generate_world
from vsa_tf.jobs import captioning
from vsa_tf.jobs.run_folder import Run
from tests.jobs.run_folder_files import file_tree


def _snippets_from_truth(world):
    """Region snippets of every object phrase (what `vsa-tf align` would infer, but exact)."""
    with open(os.path.join(world, "dataset.json")) as stream:
        images = {image["filename"]: image for image in json.load(stream)["images"]}
    with open(os.path.join(world, "truth.json")) as stream:
        truth = json.load(stream)["images"]
    snippets = []
    for filename, image in truth.items():
        for sentence_index, sentence in enumerate(image["sentences"]):
            tokens = images[filename]["sentences"][sentence_index]["tokens"]
            for phrase in sentence["phrases"]:
                snippets.append(
                    {
                        "filename": filename,
                        "sentence": sentence_index,
                        "start": phrase["start"],
                        "end": phrase["end"],
                        "words": tokens[phrase["start"]: phrase["end"]],
                        "region": phrase["object"] + 1,
                        "box": image["objects"][phrase["object"]]["box"],
                    }
                )
    return snippets


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioning")
    world = str(root / "world")
    generate_world(world, num_images=24, seed=0, min_side=48, max_side=64)
    snippets_path = str(root / "snippets.json")
    with open(snippets_path, "w") as stream:
        json.dump(_snippets_from_truth(world), stream)
    data = DataConfig(dataset=os.path.join(world, "dataset.json"), images=os.path.join(world, "images"), image_size=(32, 32), min_word_count=1)
    config = CaptionConfig(hidden_dim=16, embedding_dim=8, image=ImageEncoderConfig(filters=(4, 8)), batch_size=32, epochs=2, beam_size=3, max_length=10, learning_rate=3e-3,
                           image_pretraining="none")
    return {"root": root, "world": world, "snippets": snippets_path, "data": data, "config": config}


@pytest.fixture(scope="module")
def runs(world):
    full = captioning.train_captioner(world["config"], world["data"], str(world["root"] / "full"), verbose=0).run
    return {**world, "full": full}


@pytest.fixture(scope="module")
def region_runs(runs):
    region = captioning.train_captioner(
        runs["config"].replace(epochs=1), runs["data"], str(runs["root"] / "region"), snippets_path=runs["snippets"], verbose=0
    ).run
    return {**runs, "region": region}


def _cheap_scores(references, candidates):
    """Unigram precision per id, averaged: a Java-free stand-in for the wiring tests."""
    values = []
    for key, text in candidates.items():
        words = text.split()
        known = {word for reference in references[key] for word in reference.split()}
        values.append(sum(word in known for word in words) / max(len(words), 1))
    return {"Bleu_1": float(np.mean(values))}


def _with_scores_of_its_examples(report, records, training):
    """`report` with its metrics redone from the captions it lists, which must be those of `records`, in order.

    The caption metrics are whatever `caption_scores` is at call time (the tests patch in `_cheap_scores`).
    `training`: the training sentences, or None when the report has no baselines.
    """
    from vsa_tf.evaluation import captions as caption_metrics

    examples = report["examples"]
    assert [example["filename"] for example in examples] == [record.filename for record in records]
    references = {index: [sentence.text for sentence in record.sentences] for index, record in enumerate(records)}
    assert [example["references"] for example in examples] == list(references.values())
    captions = [example["caption"] for example in examples]
    model = {index: text if text.strip() else caption_metrics.EMPTY_CAPTION for index, text in enumerate(captions)}
    again = dict(report, model=caption_metrics.caption_scores(references, model),
                 distinct_fraction=caption_metrics.distinct_fraction(captions))
    if training is not None:
        neighbours = {index: example["nearest_neighbour"] for index, example in enumerate(examples)}
        again["nearest_neighbour"] = caption_metrics.caption_scores(references, neighbours)
        again["verbatim_fraction"] = caption_metrics.verbatim_fraction(captions, training)
    return again


def test_training_writes_a_loadable_run(runs):
    run_dir = runs["full"].folder
    for name in ("config.json", "vocabulary.txt", "model.weights.h5", "history.csv"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "config.json")) as stream:
        saved = json.load(stream)
    assert saved["kind"] == "caption" and saved["image"]["mode"] == "pixels" and saved["region_captions"] is False
    loaded = Run.load(run_dir)  # any kind, read from config.json
    batch = loaded.model.dummy_batch()
    np.testing.assert_allclose(np.asarray(loaded.model(batch)), np.asarray(runs["full"].model(batch)), rtol=1e-5)


def test_caption_images_whole_and_boxes(runs):
    images = os.path.join(runs["world"], "images")
    paths = [os.path.join(images, name) for name in sorted(os.listdir(images))[:2]]
    whole = captioning.caption_images(runs["full"], paths, beam=3)
    assert [item["image"] for item in whole] == paths and all(item["box"] is None for item in whole)
    assert all(isinstance(item["caption"], str) and np.isfinite(item["score"]) for item in whole)
    boxes = {os.path.basename(paths[0]): [[1, 2, 20, 30], [5, 5, 15, 15]]}
    per_box = captioning.caption_images(runs["full"], paths, boxes=boxes, beam=1)
    assert [item["box"] for item in per_box] == [[1, 2, 20, 30], [5, 5, 15, 15], None]
    with pytest.raises(ValueError, match="Image file not found: .*missing.jpg"):
        captioning.caption_images(runs["full"], [os.path.join(images, "missing.jpg")])


def test_evaluate_captions_wiring(runs, tmp_path, monkeypatch):
    from vsa_tf.evaluation import captions as caption_metrics

    monkeypatch.setattr(caption_metrics, "caption_scores", _cheap_scores)
    out = str(tmp_path / "report.json")
    report = captioning.evaluate_captions(runs["full"], split="test", beam=3, json_out=out)
    with open(out) as stream:
        assert json.load(stream)["num_images"] == report["num_images"] == 5
    # The nearest neighbour copies a real sentence of a training image (which image depends on a
    # 2-epoch backbone, so its score against the references is not pinned here).
    from vsa_tf.data.readers import read_dataset

    dataset = read_dataset(runs["data"].dataset)
    training = [sentence.text for record in dataset.split("train") for sentence in record.sentences]
    neighbours = [example["nearest_neighbour"] for example in report["examples"]]
    assert caption_metrics.verbatim_fraction(neighbours, training) == 1.0
    assert report["beam"] == 3 and len(report["examples"]) == 5
    # Its numbers are those of the captions it lists, scored against the test images' own references.
    assert _with_scores_of_its_examples(report, dataset.split("test"), training) == report


@pytest.mark.slow
def test_evaluate_captions_with_coco_metrics(runs):
    from vsa_tf.data.readers import read_dataset

    report = captioning.evaluate_captions(runs["full"], split="test", beam=3)
    for key in ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert key in report["model"] and key in report["nearest_neighbour"]
    dataset = read_dataset(runs["data"].dataset)
    training = [sentence.text for record in dataset.split("train") for sentence in record.sentences]
    # The COCO scorer's numbers for the listed captions, computed again (same METEOR process).
    assert _with_scores_of_its_examples(report, dataset.split("test"), training) == report


@pytest.mark.slow
def test_region_training_and_region_evaluation(region_runs, tmp_path):
    from vsa_tf.data.readers import read_dataset
    from vsa_tf.evaluation.alignment import read_truth

    assert region_runs["region"].config.region_captions is True
    records = read_dataset(region_runs["data"].dataset).split("test")
    truth = os.path.join(region_runs["world"], "truth.json")
    regions = captioning.region_references(records, read_truth(truth))
    assert regions and all(region["references"] and len(region["box"]) == 4 for region in regions)
    report = captioning.evaluate_region_captions(
        region_runs["region"], truth, full_frame_run=region_runs["full"], beam=2, json_out=str(tmp_path / "regions.json")
    )
    assert report["num_regions"] == len(regions)
    assert set(report["region_model"]) >= {"Bleu_1", "Bleu_4", "CIDEr"} and "full_frame_model" in report
    with pytest.raises(ValueError, match="needs the training snippets"):
        captioning.evaluate_region_captions(region_runs["region"], truth, alignment_run="somewhere")


def test_region_references_from_truth(world):
    from vsa_tf.data.readers import read_dataset
    from vsa_tf.evaluation.alignment import read_truth

    records = read_dataset(world["data"].dataset).split("test")
    truth = read_truth(os.path.join(world["world"], "truth.json"))
    regions = captioning.region_references(records, truth)
    first = records[0]
    objects = truth[first.filename]["objects"]
    mine = [region for region in regions if region["filename"] == first.filename]
    # One region per object that a phrase of the image's sentences names, in object order.
    named = sorted({phrase["object"] for sentence in truth[first.filename]["sentences"] for phrase in sentence["phrases"]})
    assert named and [region["box"] for region in mine] == [list(objects[index]["box"]) for index in named]
    phrase = truth[first.filename]["sentences"][0]["phrases"][0]
    expected = " ".join(first.sentences[0].tokens[phrase["start"]: phrase["end"]])
    box = objects[phrase["object"]]["box"]
    assert any(region["box"] == box and expected in region["references"] for region in mine)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="Run folder not found"):
        captioning.load_caption_run(str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="beam must be >= 1, received 0"):
        captioning.make_sampler(CaptionConfig(), beam=0)


def test_captioner_reads_the_alignment_models_cnn_kept_fixed(world, tmp_path):
    import shutil

    from vsa_tf.config import AlignmentConfig
    from vsa_tf.jobs import alignment
    from vsa_tf.layers.region_features import RegionFeatureExtractor

    data = world["data"].replace(boxes=os.path.join(world["world"], "boxes.json"), max_boxes=3)
    alignment_dir = str(tmp_path / "alignment")
    alignment.train_alignment(
        AlignmentConfig(region_dim=8, embedding_dim=6, hidden_dim=8, image=ImageEncoderConfig(filters=(4, 6)), batch_size=8, epochs=1, dropout=0.0),
        data, alignment_dir, verbose=0,
    )
    run_dir = str(tmp_path / "caption")
    config = world["config"].replace(epochs=1, image=world["config"].image.replace(normalization="layer"))  # its own filters (4, 8) are replaced
    run = captioning.train_captioner(config, data, run_dir, verbose=0, cnn_from_alignment=alignment_dir).run
    assert run.config.image.frozen and run.config.image.filters == (4, 6)
    assert run.config.image.weights == os.path.join(run_dir, captioning.ALIGNMENT_CNN_FILE)

    aligner = alignment.load_alignment_run(alignment_dir).model
    extractor = next(layer for layer in aligner._flatten_layers() if isinstance(layer, RegionFeatureExtractor))
    images = np.random.RandomState(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    batch = {"images": images, "boxes": np.tile(np.array([[[0, 0, 1, 1]]], "float32"), (2, 1, 1)), "region_mask": np.ones((2, 1), bool)}
    expected = np.asarray(extractor(batch))[:, 0]
    # After an epoch of training the CNN still computes the alignment model's features.
    np.testing.assert_allclose(np.asarray(run.model.image_features(batch)), expected, rtol=1e-5, atol=1e-6)

    # The run folder is self-contained: moved elsewhere (the CNN file's recorded path now missing), it loads the same model.
    moved = str(tmp_path / "moved")
    shutil.move(run_dir, moved)
    reloaded = captioning.load_caption_run(moved)
    np.testing.assert_allclose(np.asarray(reloaded.model.image_features(batch)), expected, rtol=1e-5, atol=1e-6)

    with pytest.raises(ValueError, match="cnn_from_alignment gives the captioner a CNN on pixels"):
        captioning.train_captioner(config, data.replace(features=str(tmp_path)), str(tmp_path / "cached"), cnn_from_alignment=alignment_dir)

    # Fine-tuned instead: the CNN starts from the alignment model's weights and moves with the captioner.
    tuned = captioning.train_captioner(
        config, data, str(tmp_path / "tuned"), verbose=0, cnn_from_alignment=alignment_dir, fine_tune_cnn=True
    ).run
    assert tuned.config.image.frozen is False and tuned.config.image.filters == (4, 6)
    assert not np.allclose(np.asarray(tuned.model.image_features(batch)), expected, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="fine_tune_cnn trains the CNN taken from an alignment run; give cnn_from_alignment too"):
        captioning.train_captioner(config, data, str(tmp_path / "unused"), fine_tune_cnn=True)


def test_a_from_scratch_cnn_is_pretrained_on_the_alignment_objective_by_default(world, tmp_path, capsys):
    from vsa_tf.jobs import alignment

    config = world["config"].replace(epochs=1, image_pretraining="alignment", image_pretraining_epochs=1)
    assert captioning.pretrains_cnn(config)
    pretraining = captioning.image_pretraining_config(config)
    assert (pretraining.epochs, pretraining.optimizer, pretraining.image.filters, pretraining.seed) == (1, "adam", (4, 8), config.seed)
    assert pretraining.image.normalization == "none" and pretraining.image.weights is None

    run_dir = str(tmp_path / "caption")
    run = captioning.train_captioner(config, world["data"], run_dir, verbose=0).run
    assert "an alignment model is trained first" in capsys.readouterr().err
    aligner = alignment.load_alignment_run(os.path.join(run_dir, captioning.IMAGE_PRETRAINING_DIR))
    assert aligner.config.image.filters == (4, 8) and aligner.config.data.image_size == (32, 32)
    assert run.config.image_pretraining == "alignment" and run.config.image.frozen is True
    assert run.config.image.weights == os.path.join(run_dir, captioning.ALIGNMENT_CNN_FILE)
    # Resumed with the same settings: the finished pretraining is reused, the saved config is unchanged.
    again = captioning.train_captioner(config, world["data"], run_dir, verbose=0).run
    assert again.config == run.config

    # A trained CNN given, cached features or image_pretraining="none": no pretraining, and the config says so.
    assert not captioning.pretrains_cnn(config, cnn_from_alignment=run_dir)
    assert not captioning.pretrains_cnn(config.replace(data=world["data"].replace(features="features")))
    assert not captioning.pretrains_cnn(config.replace(image=config.image.replace(weights="cnn.weights.h5")))
    plain = captioning.train_captioner(config.replace(image_pretraining="none"), world["data"], str(tmp_path / "plain"), verbose=0).run
    assert plain.config.image_pretraining == "none"
    assert not os.path.exists(os.path.join(plain.folder, captioning.IMAGE_PRETRAINING_DIR))
    with pytest.raises(ValueError, match="image_pretraining_config needs a CaptionConfig, received AlignmentConfig"):
        captioning.image_pretraining_config(pretraining)


def test_training_validates_the_data_before_writing(world, tmp_path):
    images = os.path.join(world["world"], "images")
    present = sorted(os.listdir(images))[0]
    dataset = tmp_path / "dataset.json"
    entries = [
        {"filename": "absent.jpg", "split": "train", "sentences": [{"raw": "a red square"}]},
        {"filename": present, "split": "train", "sentences": [{"raw": "a red square"}, {"raw": "  "}]},
        {"filename": "../escape.jpg", "split": "train", "sentences": [{"raw": "a red square"}]},
    ]
    dataset.write_text(json.dumps({"images": entries}))
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError) as raised:
        captioning.train_captioner(world["config"], world["data"].replace(dataset=str(dataset)), str(run_dir), verbose=0)
    message = str(raised.value)
    assert "absent.jpg: image file not found" in message
    assert f"{present}: caption 1 is empty" in message
    assert "../escape.jpg: filename escapes the image root" in message
    assert not run_dir.exists()


def test_rerun_with_other_settings_leaves_the_run_untouched_and_same_settings_extend_it(runs, tmp_path):
    import shutil

    run_dir = str(tmp_path / "copy")
    shutil.copytree(runs["full"].folder, run_dir)
    before = file_tree(run_dir)
    with pytest.raises(ValueError, match=r"copy already holds a 'caption' run .*hidden_dim: 16 -> 48.*pick another run folder \(--out"):
        captioning.train_captioner(runs["config"].replace(hidden_dim=48), runs["data"], run_dir, verbose=0)
    assert file_tree(run_dir) == before
    assert captioning.load_caption_run(run_dir).config.hidden_dim == 16

    # Only the epoch count changed: the finished 2-epoch run trains a third epoch.
    extended = captioning.train_captioner(runs["config"].replace(epochs=3), runs["data"], run_dir, verbose=0).run
    assert extended.config.epochs == 3
    with open(os.path.join(run_dir, "history.csv")) as stream:
        assert [line.split(",")[0] for line in stream.read().split()[1:]] == ["0", "1", "2"]


def test_evaluate_captions_on_a_file_without_train_split_skips_the_baselines(runs, tmp_path, monkeypatch, capsys):
    from vsa_tf.evaluation import captions as caption_metrics

    monkeypatch.setattr(caption_metrics, "caption_scores", _cheap_scores)
    with open(runs["data"].dataset) as stream:
        values = json.load(stream)
    values["images"] = [image for image in values["images"] if image["split"] == "val"]
    val_only = tmp_path / "captions_val.json"
    val_only.write_text(json.dumps(values))
    report = captioning.evaluate_captions(runs["full"], runs["data"].replace(dataset=str(val_only)), split="val", beam=1)
    assert report["num_images"] == len(values["images"]) == len(report["examples"])
    assert report["nearest_neighbour"] is None and report["verbatim_fraction"] is None
    from vsa_tf.data.readers import read_dataset

    assert _with_scores_of_its_examples(report, read_dataset(str(val_only)).split("val"), None) == report
    assert "no train split" in report["skipped"]
    assert all(example["nearest_neighbour"] is None for example in report["examples"])
    assert "captions_val.json has no train split" in capsys.readouterr().err


def test_caption_images_names_a_file_that_is_not_an_image_and_a_box_outside_it(runs, tmp_path):
    not_an_image = tmp_path / "x.jpg"
    not_an_image.write_text("not an image\n")
    with pytest.raises(ValueError, match=r"x.jpg: cannot decode the image; expected a JPEG, PNG, GIF or BMP file"):
        captioning.caption_images(runs["full"], [str(not_an_image)], beam=1)

    images = os.path.join(runs["world"], "images")
    name = sorted(os.listdir(images))[0]
    path = os.path.join(images, name)
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    boxes = {name: [[1, 2, 20, 30], [100, 100, 400, 300]]}
    with pytest.raises(ValueError, match=rf"{name}: box 1 \[100.0, 100.0, 400.0, 300.0\] lies outside the {width}x{height} image .*{name}"):
        captioning.caption_images(runs["full"], [path], boxes=boxes, beam=1)
    with pytest.raises(ValueError, match=r"box 0 \[20.0, 2.0, 1.0, 30.0\] of .* is degenerate"):
        captioning.caption_images(runs["full"], [path], boxes={name: [[20, 2, 1, 30]]}, beam=1)


def test_caption_images_finds_boxes_by_the_trailing_path_and_warns_when_none_match(runs, tmp_path, capsys):
    import shutil

    source = os.path.join(runs["world"], "images")
    first, second = sorted(os.listdir(source))[:2]
    os.makedirs(tmp_path / "images" / "sub")
    shutil.copy(os.path.join(source, first), tmp_path / "images" / "sub" / "a.jpg")
    shutil.copy(os.path.join(source, second), tmp_path / "images" / "b.jpg")
    boxes_path = tmp_path / "boxes.json"
    # The dataset filename `sub/a.jpg` wins over the bare basename.
    boxes_path.write_text(json.dumps({"sub/a.jpg": [[1, 2, 20, 30]], "a.jpg": [[5, 5, 15, 15]]}))
    paths = [str(tmp_path / "images" / "sub" / "a.jpg"), str(tmp_path / "images" / "b.jpg")]
    results = captioning.caption_images(runs["full"], paths, boxes=str(boxes_path), beam=1)
    assert [(item["image"], item["box"]) for item in results] == [(paths[0], [1.0, 2.0, 20.0, 30.0]), (paths[1], None)]
    assert captioning._box_key({"sub/a.jpg": 1}, "images/sub/a.jpg") == "sub/a.jpg"
    assert captioning._box_key({"a.jpg": 1}, "./images/sub/a.jpg") == "a.jpg"
    assert captioning._box_key({"a.jpg": 1}, "images/sub/c.jpg") is None
    assert f"warning: {paths[1]} matches no key of {boxes_path}" in capsys.readouterr().err


def test_training_warns_when_sentences_are_cut_before_end(capsys):
    from vsa_tf.data.records import ImageRecord, Sentence

    records = [ImageRecord(filename="a.jpg", image_id=0, split="train", sentences=[Sentence(tokens=["w"] * length) for length in (3, 5, 9)])]
    assert captioning._warn_about_cut_sentences(records, max_words=8) == pytest.approx(1 / 3)
    assert "33.3% of the training sentences are longer than data.max_words=8 (longest 9 words)" in capsys.readouterr().err
    assert captioning._warn_about_cut_sentences(records, max_words=9) == 0.0
    assert capsys.readouterr().err == ""


def test_cached_region_captions_train_and_evaluate_on_each_truth_regions_features(runs, tmp_path, monkeypatch):
    """Cached mode end to end: region snippets read their region's feature; Table 3 reads each truth
    object's cached feature (features cached for the truth's own boxes, `truth_boxes`)."""
    from vsa_tf.config import AlignmentConfig
    from vsa_tf.data import features as features_lib
    from vsa_tf.data.readers import read_dataset
    from vsa_tf.evaluation import captions as caption_metrics
    from vsa_tf.data import boxes as boxes_lib
    from vsa_tf.evaluation.alignment import read_truth, truth_boxes
    from vsa_tf.jobs import alignment

    world = runs
    monkeypatch.setattr(caption_metrics, "caption_scores", _cheap_scores)
    truth_path = os.path.join(world["world"], "truth.json")
    truth = read_truth(truth_path)
    boxes = truth_boxes(truth)
    boxes_path = str(tmp_path / "truth_boxes.json")
    with open(boxes_path, "w") as stream:
        json.dump(boxes, stream)
    max_boxes = max(len(value) for value in boxes.values())
    records = read_dataset(world["data"].dataset).records
    rng = np.random.default_rng(0)
    values = rng.normal(size=(len(records), max_boxes + 1, 6)).astype(np.float32)
    store_path = str(tmp_path / "features")
    features_lib.write_store(
        store_path, ((record.filename, values[row], np.ones(max_boxes + 1, bool)) for row, record in enumerate(records)),
        len(records), max_boxes + 1, 6, shard_size=10,
    )
    data = world["data"].replace(boxes=boxes_path, features=store_path, max_boxes=max_boxes)
    # Snippets: every object phrase, at its box's region among the truth boxes.
    snippets = []
    for snippet in _snippets_from_truth(world["world"]):
        region = boxes[snippet["filename"]].index([float(value) for value in snippet["box"]]) + 1
        snippets.append(dict(snippet, region=region, box=boxes[snippet["filename"]][region - 1]))
    snippets_path = str(tmp_path / "snippets.json")
    with open(snippets_path, "w") as stream:
        json.dump(snippets, stream)
    config = world["config"].replace(epochs=1)
    region = captioning.train_captioner(config, data, str(tmp_path / "region"), snippets_path=snippets_path, verbose=0).run
    full = captioning.train_captioner(config, data, str(tmp_path / "full"), verbose=0).run
    assert region.config.image.mode == "cached" and region.config.region_captions is True
    aligner = str(tmp_path / "alignment")
    alignment.train_alignment(
        AlignmentConfig(image=ImageEncoderConfig(mode="cached"), region_dim=8, embedding_dim=4, hidden_dim=6, batch_size=8, epochs=1),
        data, aligner, verbose=0,
    )

    report = captioning.evaluate_region_captions(
        region, truth_path, data_config=data, full_frame_run=full, alignment_run=aligner, snippets_path=snippets_path, beam=1
    )
    test_records = [record for record in records if record.split == "test"]
    expected_regions = captioning.region_references(test_records, truth)
    assert report["num_regions"] == len(expected_regions) and report["num_regions_without_features"] == 0
    assert {"region_model", "full_frame_model", "ranking_baseline"} <= set(report)
    # Each listed caption is the model's greedy caption of that truth region's cached feature.
    row_of = {record.filename: row for row, record in enumerate(records)}
    sampler = captioning.make_sampler(region.config, 1)
    for example in report["region_model_examples"][:4]:
        index = boxes[example["filename"]].index([float(value) for value in example["box"]]) + 1
        batch = {"region_features": values[row_of[example["filename"]], index][None, None], "region_mask": np.ones((1, 1), bool)}
        tokens = region.model.generate(batch, sampler)
        assert example["caption"] == captioning._decode_best(region.vocabulary, tokens)[0]

    def assert_read_features(regions_given, boxes_by_image, store_values, data_config):
        """The features the evaluation's cached regions read are those cached for each region's own box."""
        store = features_lib.FeatureStore(data_config.features)
        kept = [item for item, _ in captioning._in_record_order(captioning._with_cached_regions(regions_given, store, data_config), test_records)]
        batches = captioning._region_dataset(kept, test_records, data_config, region.vocabulary, 4, store)
        received = np.concatenate([batch["region_features"].numpy() for batch in batches])[:, 0]
        expected = [store_values[row_of[item["filename"]], boxes_by_image[item["filename"]].index(list(item["box"])) + 1] for item in kept]
        np.testing.assert_array_equal(received, np.stack(expected))
        return kept

    expected_regions = [dict(item, box=[float(value) for value in item["box"]]) for item in expected_regions]
    assert len(assert_read_features(expected_regions, boxes, values, data)) == len(expected_regions)

    # Features cached for other boxes: a store whose regions follow another boxes file; the truth regions that
    # are not among its boxes are left out and counted, the others read their own box's feature there.
    first = test_records[0].filename
    partial = dict(boxes, **{first: boxes[first][1:] + [[0.0, 0.0, 1.0, 1.0]]})
    partial_path = str(tmp_path / "partial_boxes.json")
    with open(partial_path, "w") as stream:
        json.dump(partial, stream)
    partial_values = values.copy()
    count = len(boxes[first])
    partial_values[row_of[first], 1:count] = values[row_of[first], 2:count + 1]
    partial_store = str(tmp_path / "partial_features")
    features_lib.write_store(
        partial_store, ((record.filename, partial_values[row], np.ones(max_boxes + 1, bool)) for row, record in enumerate(records)),
        len(records), max_boxes + 1, 6, shard_size=10,
    )
    partial_data = data.replace(boxes=partial_path, features=partial_store)
    left_out = sum(region["filename"] == first and region["box"] == boxes[first][0] for region in expected_regions)
    report = captioning.evaluate_region_captions(region, truth_path, data_config=partial_data, beam=1)
    assert left_out == 1 and report["num_regions_without_features"] == 1 and report["num_regions"] == len(expected_regions) - 1
    assert len(assert_read_features(expected_regions, partial, partial_values, partial_data)) == len(expected_regions) - 1

    # A store that records the boxes file it was cached from refuses another one.
    index_path = os.path.join(store_path, "index.json")
    with open(index_path) as stream:
        index = json.load(stream)
    index["boxes_sha256"] = features_lib.boxes_fingerprint(boxes_lib.read_boxes(boxes_path), index["filenames"])
    with open(index_path, "w") as stream:
        json.dump(index, stream)
    captioning.evaluate_region_captions(region, truth_path, data_config=data, beam=1)  # its own boxes file passes
    with pytest.raises(ValueError, match=r"its regions were cached from another boxes file than .*partial_boxes.json"):
        captioning.evaluate_region_captions(region, truth_path, data_config=data.replace(boxes=partial_path), beam=1)

    # Snippets aligned on another region set are refused, naming the snippet and both boxes.
    moved = [dict(snippets[0], box=[0.0, 0.0, 1.0, 1.0])] + snippets[1:]
    with open(snippets_path, "w") as stream:
        json.dump(moved, stream)
    with pytest.raises(ValueError, match=r"snippet 0 .* names region \d+ with box \[0.0, 0.0, 1.0, 1.0\], but region \d+ of the cached features is box"):
        captioning.train_captioner(config, data, str(tmp_path / "other"), snippets_path=snippets_path, verbose=0)
    with pytest.raises(ValueError, match="read images differently"):
        captioning.evaluate_region_captions(region, truth_path, data_config=data, full_frame_run=runs["full"])
