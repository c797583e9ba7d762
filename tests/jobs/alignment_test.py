import json
import os

import numpy as np
import pytest

from tests.jobs.proposal_boxes_test import proposals_run  # noqa: F401 (a fixture: a tiny proposals run)
from tests.jobs.proposals_test import world  # noqa: F401 (the fixture it is trained on)
from vsa_tf.config import AlignmentConfig, DataConfig, ImageEncoderConfig
from vsa_tf.data import synthetic
from vsa_tf.jobs import alignment


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("alignment")
    world = str(root / "world")
    synthetic.generate_world(world, num_images=None, split_counts=(12, 4, 4), seed=0, min_side=48, max_side=56,
                             max_objects=2, sentences_per_image=2)
    data = DataConfig(
        dataset=os.path.join(world, "dataset.json"), images=os.path.join(world, "images"),
        boxes=os.path.join(world, "boxes.json"), image_size=(32, 32), max_boxes=3, max_words=10, min_word_count=1,
    )
    config = AlignmentConfig(
        region_dim=8, embedding_dim=6, hidden_dim=8, image=ImageEncoderConfig(filters=(4, 8)), batch_size=8, epochs=2,
        learning_rate=1e-3, dropout=0.0, hardest_negative=True, warmup_epochs=1,
    )
    run_dir = str(root / "run")
    summary = alignment.train_alignment(config, data, run_dir, verbose=0)
    return run_dir, data, world, summary


def test_train_writes_the_run_folder(trained_run):
    run_dir, data, _, summary = trained_run
    for name in ("config.json", "vocabulary.txt", "model.weights.h5", "history.csv", "retrieval_test.json"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "config.json")) as stream:
        saved = json.load(stream)
    assert saved["kind"] == "alignment" and saved["data"]["dataset"] == data.dataset
    assert len(summary.history["val_recall_sum"]) == 2
    assert summary.test["n_images"] == 4 and summary.test["n_sentences"] == 8


def test_load_and_evaluate_retrieval(trained_run, tmp_path):
    run_dir, _, _, summary = trained_run
    run = alignment.load_alignment_run(run_dir)
    assert run.model.feature_mode == "pixels" and run.config.region_dim == 8
    out = str(tmp_path / "retrieval.json")
    result = alignment.evaluate_retrieval(run_dir, None, "test", json_out=out)
    assert result == summary.test
    with open(out) as stream:
        assert json.load(stream)["image_search"]["r10"] == result["image_search"]["r10"]


def test_align_split_snippets_cover_every_word(trained_run, tmp_path):
    run_dir, _, _, _ = trained_run
    out = str(tmp_path / "snippets.json")
    snippets = alignment.align_split(run_dir, None, "test", beta=0.0, out=out)
    with open(out) as stream:
        assert json.load(stream) == snippets
    assert {snippet["filename"] for snippet in snippets} and all(snippet["end"] > snippet["start"] for snippet in snippets)
    # Snippets partition each sentence: their lengths add up to the sentence lengths.
    by_sentence = {}
    for snippet in snippets:
        by_sentence.setdefault((snippet["filename"], snippet["sentence"]), []).append(snippet)
    for pieces in by_sentence.values():
        pieces.sort(key=lambda piece: piece["start"])
        assert pieces[0]["start"] == 0
        assert all(left["end"] == right["start"] for left, right in zip(pieces, pieces[1:]))
    one_region = alignment.align_split(run_dir, None, "test", beta=1e6)
    assert len(one_region) == len(by_sentence)  # a huge beta puts each sentence on a single region


def test_plot_alignment(trained_run, tmp_path):
    run_dir, _, _, _ = trained_run
    out = alignment.plot_sentence_alignment(run_dir, None, "test", sentence=1, out=str(tmp_path / "figure.png"))
    assert os.path.getsize(out) > 1000
    with pytest.raises(ValueError, match="sentence index 9"):
        alignment.plot_sentence_alignment(run_dir, None, "test", sentence=9, out=str(tmp_path / "x.png"))


def test_invalid_data_fails_before_writing(tmp_path):
    run_dir = str(tmp_path / "run")
    data = DataConfig(dataset=str(tmp_path / "missing.json"), images=str(tmp_path))
    with pytest.raises(ValueError, match="missing.json"):
        alignment.train_alignment(AlignmentConfig(), data, run_dir)
    assert not os.path.exists(run_dir)
    with pytest.raises(ValueError, match="data.features"):
        alignment.train_alignment(AlignmentConfig(image=ImageEncoderConfig(mode="cached")), data, run_dir)
    with pytest.raises(ValueError, match="not a vsa_tf run"):
        os.makedirs(run_dir)
        alignment.load_alignment_run(run_dir)


def test_alignment_config_round_trip_and_validation(tmp_path):
    from vsa_tf.config import load_config, save_config

    config = AlignmentConfig(data=DataConfig(dataset="d.json", images="img"), sentence_encoder="bag_of_words", score="defrag")
    path = str(tmp_path / "config.json")
    save_config(config, path)
    assert load_config(AlignmentConfig, path) == config
    with pytest.raises(ValueError, match="sentence_encoder.*'lstm'"):
        AlignmentConfig(sentence_encoder="lstm")
    with pytest.raises(ValueError, match="kind.*'caption'"):
        AlignmentConfig(kind="caption")
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        AlignmentConfig(batch_size=1)
    with pytest.raises(ValueError, match=r"AlignmentConfig: image normalization must be one of \['none', 'l2'\], received 'layer'"):
        AlignmentConfig(image=ImageEncoderConfig(normalization="layer"))


def test_cached_feature_mode_trains_and_reloads(trained_run, tmp_path):
    from vsa_tf.data import boxes, features, readers
    from vsa_tf.layers.region_features import RegionFeatureExtractor

    _, data, _, _ = trained_run
    dataset = readers.read_dataset(data.dataset)
    extractor = RegionFeatureExtractor(backbone_filters=(4, 6), backbone_frozen=True)
    store = str(tmp_path / "features")
    features.write_region_features(dataset.records, data.images, boxes.read_boxes(data.boxes),
                                   data, extractor, store)
    cached = data.replace(features=store)
    vectors = str(tmp_path / "glove.npy")  # .npy word vectors (scripts/convert_glove_package.py's format)
    np.save(vectors, np.arange(8, dtype="float32").reshape(2, 4))
    (tmp_path / "glove.words.txt").write_text("red\nsquare\n", encoding="utf-8")
    config = AlignmentConfig(image=ImageEncoderConfig(mode="cached", normalization="l2"), region_dim=8, embedding_dim=4,
                             hidden_dim=6, batch_size=8, epochs=1, sentence_encoder="bag_of_words", word_vectors=vectors)
    run_dir = str(tmp_path / "run")
    summary = alignment.train_alignment(config, cached, run_dir, verbose=0)
    run = alignment.load_alignment_run(run_dir)
    assert run.model.feature_dim == 6 and run.model.feature_mode == "cached"
    assert run.model.feature_normalization == "l2"
    assert alignment.evaluate_retrieval(run_dir, None, "test") == summary.test

    # Features given with the default (pixel) image mode: the run reads them, as `train-align --features F` does.
    followed = alignment.train_alignment(
        config.replace(image=ImageEncoderConfig(normalization="l2"), word_vectors=None), cached, str(tmp_path / "follows"), verbose=0
    ).run
    assert followed.config.image.mode == "cached" and followed.model.feature_mode == "cached" and followed.model.feature_dim == 6


def test_saved_cnn_gives_a_captioner_the_alignment_models_features(trained_run, tmp_path):
    from vsa_tf.layers.region_features import RegionFeatureExtractor
    from vsa_tf.models.caption_model import CaptionModel

    run_dir, _, _, _ = trained_run
    with pytest.raises(ValueError, match="must end with .weights.h5, received 'cnn.h5'"):
        alignment.save_backbone_weights(run_dir, "cnn.h5")
    path = alignment.save_backbone_weights(run_dir, str(tmp_path / "cnn.weights.h5"))
    assert os.listdir(tmp_path) == ["cnn.weights.h5"]  # no temporary file left behind
    run = alignment.load_alignment_run(run_dir)
    extractor = next(layer for layer in run.model._flatten_layers() if isinstance(layer, RegionFeatureExtractor))
    images = np.random.RandomState(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    batch = {"images": images, "boxes": np.tile(np.array([[[0, 0, 1, 1]]], "float32"), (3, 1, 1)), "region_mask": np.ones((3, 1), bool)}
    expected = np.asarray(extractor(batch))[:, 0]
    assert np.abs(expected).max() > 0  # a live CNN, so the comparison below means something

    captioner = CaptionModel(
        vocabulary_size=12, hidden_dim=4, embedding_dim=4, image_encoder=ImageEncoderConfig(weights=path, frozen=True, filters=(4, 8)),
        image_shape=(32, 32),
    ).build_from_dummy()
    np.testing.assert_allclose(np.asarray(captioner.image_features(batch)), expected, rtol=1e-5, atol=1e-6)
    assert not any("backbone" in weight.path for weight in captioner.trainable_weights)

    with pytest.raises(ValueError, match="simple-backbone weights .*filters \\(4, 6\\).*value.shape=\\(3, 3, 4, 8\\)"):
        CaptionModel(vocabulary_size=12, hidden_dim=4, embedding_dim=4, image_encoder=ImageEncoderConfig(weights=path, filters=(4, 6)),
                     image_shape=(32, 32)).build_from_dummy()


def _real_format_truth(world, path):
    """The world's truth in the real (Flickr8k) format: objects {"box", "phrase"}, spans with no head index;
    one extra phrase of each val image's first sentence ends past the run's max_words (10)."""
    with open(os.path.join(world, "truth.json")) as stream:
        images = json.load(stream)["images"]
    with open(os.path.join(world, "dataset.json")) as stream:
        splits = {image["filename"]: image["split"] for image in json.load(stream)["images"]}
    real = {}
    for filename, image in images.items():
        sentences = [{"phrases": [{key: phrase[key] for key in ("start", "end", "object")} for phrase in sentence["phrases"]]}
                     for sentence in image["sentences"]]
        if splits[filename] == "val" and image["objects"]:
            sentences[0]["phrases"].append({"start": 9, "end": 12, "object": 0})
        real[filename] = {"width": image["width"], "height": image["height"], "sentences": sentences,
                          "objects": [{"box": item["box"], "phrase": f"a {item['shape']}"} for item in image["objects"]]}
    with open(path, "w") as stream:
        json.dump({"images": real}, stream)
    return real, splits


def _hand_baselines(real, splits, boxes_path, max_boxes):
    """Whole-image and largest-box phrase accuracy of the val phrases, computed here without the library."""
    from vsa_tf.evaluation.alignment import box_iou

    with open(boxes_path) as stream:
        boxes = json.load(stream)
    hits = {"whole_image": 0, "largest_box": 0}
    total = past = 0
    for filename, image in real.items():
        if splits[filename] != "val":
            continue
        width, height = image["width"], image["height"]
        whole = [0, 0, width, height]
        detector = [[min(max(v, 0), limit) for v, limit in zip(box, (width, height, width, height))]
                    for box in boxes.get(filename, [])[:max_boxes]]
        largest = max(detector, key=lambda box: (box[2] - box[0]) * (box[3] - box[1])) if detector else whole
        for sentence in image["sentences"]:
            for phrase in sentence["phrases"]:
                if phrase["end"] > 10:  # past the run's max_words
                    past += 1
                    continue
                target = image["objects"][phrase["object"]]["box"]
                total += 1
                hits["whole_image"] += box_iou([whole], [target])[0] >= 0.5
                hits["largest_box"] += box_iou([largest], [target])[0] >= 0.5
    return {name: count / total for name, count in hits.items()}, total, past


def test_grounding_report_on_real_format_phrases(trained_run, tmp_path):
    run_dir, data, world, _ = trained_run
    truth_path = str(tmp_path / "truth.json")
    real, splits = _real_format_truth(world, truth_path)
    report = alignment.grounding_report(run_dir, data, truth_path, split="val", betas=(0, 1), baseline_runs=[run_dir], seed=1)
    json.dumps(report)  # JSON-able
    assert report["regions"]["source"] == "boxes" and report["regions"]["boxes"] == data.boxes
    assert report["regions"]["proposals"] is None and report["regions"]["max_boxes"] == 3
    num_val_images = sum(split == "val" for split in splits.values())
    assert report["num_images"] == num_val_images and report["num_sentences"] == 2 * num_val_images
    expected, num_phrases, num_past = _hand_baselines(real, splits, data.boxes, max_boxes=3)
    assert report["num_phrases"] == num_phrases and report["num_phrases_past_max_words"] == num_past > 0
    name = os.path.basename(run_dir)
    assert list(report["methods"]) == [
        "mrf_beta=0", "mrf_beta=1", "argmax", "mrf_beta=0_boxes_only", "mrf_beta=1_boxes_only", "argmax_boxes_only",
        "whole_image", "largest_box", "random_box", "best_box_oracle",
        f"{name}:mrf_beta=0", f"{name}:mrf_beta=1", f"{name}:argmax",
        f"{name}:mrf_beta=0_boxes_only", f"{name}:mrf_beta=1_boxes_only", f"{name}:argmax_boxes_only",
    ]
    methods = report["methods"]
    assert all(row["num_phrases"] == num_phrases for row in methods.values())
    assert methods["whole_image"]["phrase_accuracy_head"] == pytest.approx(expected["whole_image"])
    assert methods["largest_box"]["phrase_accuracy_head"] == pytest.approx(expected["largest_box"])
    assert methods["argmax"] == methods["mrf_beta=0"]  # β = 0 is the per-word argmax
    assert methods["argmax_boxes_only"] == methods["mrf_beta=0_boxes_only"]
    assert methods[f"{name}:mrf_beta=1"] == methods["mrf_beta=1"]  # the same run as its own baseline
    for row in methods.values():
        assert 0.0 <= row["phrase_accuracy_all_words"] <= row["phrase_accuracy_head"] <= 1.0
    assert methods["best_box_oracle"]["phrase_accuracy_head"] >= max(row["phrase_accuracy_head"] for row in methods.values())
    # Today's snippets give the same figures through the snippet evaluator.
    from vsa_tf.evaluation.alignment import evaluate_alignment, phrases_within

    snippets = alignment.align_split(run_dir, data, "val", beta=1.0)
    lengths = {(s["filename"], s["sentence"]): 0 for s in snippets}
    for s in snippets:
        lengths[(s["filename"], s["sentence"])] = max(lengths[(s["filename"], s["sentence"])], s["end"])
    direct = evaluate_alignment(snippets, phrases_within(real, lengths)[0])
    assert direct["phrase_accuracy"] == methods["mrf_beta=1"]["phrase_accuracy_head"]
    # The random baseline is reproducible with its seed.
    again = alignment.grounding_report(run_dir, data, {"images": real}, split="val", betas=[0], seed=1)
    assert again["methods"]["random_box"] == methods["random_box"]
    # max_words sets how much of each sentence is read: 3 words leave more phrases out of reach; 64 reach
    # every phrase inside its sentence (the extra phrases, tokens 9-11, lie past these short sentences).
    with open(os.path.join(world, "dataset.json")) as stream:
        lengths = {image["filename"]: len(image["sentences"][0]["tokens"]) for image in json.load(stream)["images"]}
    outside = sum(1 for filename, image in real.items() if splits[filename] == "val" and image["objects"] and lengths[filename] < 12)
    for words, past in ((3, None), (64, outside)):
        report = alignment.grounding_report(run_dir, data, {"images": real}, split="val", betas=[0], max_words=words)
        assert report["max_words"] == words and report["num_phrases"] + report["num_phrases_past_max_words"] == num_phrases + num_past
        assert report["num_phrases_past_max_words"] == past if past is not None else report["num_phrases_past_max_words"] > num_past
    with pytest.raises(ValueError, match="max_words must be a positive integer or None, received 0"):
        alignment.grounding_report(run_dir, data, {"images": real}, split="val", max_words=0)


def test_boxes_only_labels_leave_the_whole_image_out():
    # 3 words x 3 regions (0 = the whole image): word 0 scores the whole image highest, then box 2.
    scores = np.array([[5.0, 1.0, 3.0], [0.0, 4.0, 1.0], [0.0, 1.0, 4.0]])
    boxes = np.array([[0, 0, 100, 100], [0, 0, 10, 10], [50, 50, 90, 90]], np.float32)
    sentences = [("a.jpg", 0, ["dog", "on", "grass"], scores, boxes)]

    def regions(snippets):
        return [(snippet["start"], snippet["end"], snippet["region"]) for snippet in snippets]

    assert regions(alignment._argmax_snippets(sentences)) == [(0, 1, 0), (1, 2, 1), (2, 3, 2)]
    assert regions(alignment._argmax_snippets(sentences, boxes_only=True)) == [(0, 1, 2), (1, 2, 1), (2, 3, 2)]
    by_beta = alignment._snippets_for_betas(sentences, [0.0, 100.0], boxes_only=True)
    assert regions(by_beta[0.0]) == [(0, 1, 2), (1, 2, 1), (2, 3, 2)]
    assert [snippet["region"] for snippet in by_beta[100.0]] == [2]  # one snippet: the best box for the sentence (3 + 1 + 4)
    assert by_beta[100.0][0]["box"] == [50.0, 50.0, 90.0, 90.0]
    whole_only = [("b.jpg", 0, ["dog"], np.array([[1.0]]), boxes[:1])]  # no boxes: the whole image stays the label
    assert regions(alignment._argmax_snippets(whole_only, boxes_only=True)) == [(0, 1, 0)]


def test_grounding_report_errors(trained_run, tmp_path):
    run_dir, data, world, _ = trained_run
    with pytest.raises(ValueError, match="needs a truth file"):
        alignment.grounding_report(run_dir, data, None)
    with pytest.raises(ValueError, match=r"betas must be .* received \[-1.0\]"):
        alignment.grounding_report(run_dir, data, {"images": {}}, betas=[-1])
    with pytest.raises(ValueError, match="none of the 'val' split's images is in the truth file"):
        alignment.grounding_report(run_dir, data, {"images": {}})


def test_grounding_report_with_learned_proposals(trained_run, proposals_run, tmp_path):
    run_dir, data, world_folder, _ = trained_run
    truth_path = str(tmp_path / "truth.json")
    _real_format_truth(world_folder, truth_path)
    with_boxes = alignment.grounding_report(run_dir, data, truth_path, betas=[1])
    proposed = data.replace(boxes=None, proposals=proposals_run)
    report = alignment.grounding_report(run_dir, proposed, truth_path, betas=[1])
    regions = report["regions"]
    assert regions["source"] == "proposals" and regions["proposals"] == os.path.abspath(proposals_run)
    assert regions["boxes"] != data.boxes and os.path.exists(regions["boxes"])  # the proposals as a boxes file
    assert report["num_phrases"] == with_boxes["num_phrases"]
    # Region 0 is the whole image whatever the boxes are.
    assert report["methods"]["whole_image"] == with_boxes["methods"]["whole_image"]
    with open(data.dataset) as stream:
        val_images = {image["filename"] for image in json.load(stream)["images"] if image["split"] == "val"}
    with open(regions["boxes"]) as stream:
        assert set(json.load(stream)) == val_images  # proposed for the evaluated split


def test_grounding_report_with_the_detector_confidence_prior(trained_run, proposals_run, tmp_path):
    from vsa_tf.data.boxes import read_box_scores, read_boxes

    run_dir, data, world_folder, _ = trained_run
    truth_path = str(tmp_path / "truth.json")
    _real_format_truth(world_folder, truth_path)
    proposed = data.replace(boxes=None, proposals=proposals_run)
    plain = alignment.grounding_report(run_dir, proposed, truth_path, betas=[0, 1])
    assert plain["confidence_weights"] == [0.0] and "most_confident_box" not in plain["methods"]
    report = alignment.grounding_report(run_dir, proposed, truth_path, betas=[0, 1], baseline_runs=[run_dir], confidence_weights=[0, 0.5, 1e6])
    assert report["confidence_weights"] == [0.0, 0.5, 1e6]
    methods = report["methods"]
    for name, row in plain["methods"].items():  # weight 0 gives the paper's rows, unchanged
        assert methods[name] == row
    for prefix in ("", "run:"):
        for row in ("mrf_beta=0", "mrf_beta=1", "argmax", "mrf_beta=0_boxes_only", "argmax_boxes_only"):
            assert f"{prefix}confidence=0.5:{row}" in methods and f"{prefix}confidence=1e+06:{row}" in methods
    # The detector's own answer is each image's first (most confident) proposal: the confidences read pair
    # with the boxes in the order the regions take them.
    scores = read_box_scores(report["regions"]["boxes"])
    with open(report["regions"]["boxes"]) as stream:
        raw = json.load(stream)
    for filename, entry in raw.items():
        pairs = sorted(zip(entry["scores"], map(tuple, entry["boxes"])), key=lambda pair: -pair[0])
        np.testing.assert_allclose(scores[filename], [score for score, _ in pairs], rtol=1e-6)
        np.testing.assert_allclose(read_boxes(report["regions"]["boxes"])[filename], [box for _, box in pairs], rtol=1e-6)
    # ... and an overwhelming prior labels every word with it when the whole image is not a label.
    assert methods["confidence=1e+06:argmax_boxes_only"] == methods["most_confident_box"]
    assert methods["confidence=1e+06:mrf_beta=1_boxes_only"] == methods["most_confident_box"]
    # The paper's rows come first whatever the weights; an image the scored file leaves out keeps the whole image.
    only = alignment.grounding_report(run_dir, proposed, truth_path, betas=[0], confidence_weights=[0.5])
    assert only["confidence_weights"] == [0.0, 0.5] and list(only["methods"])[0] == "mrf_beta=0"
    assert only["methods"]["confidence=0.5:argmax"] == methods["confidence=0.5:argmax"]
    left_out = dict(raw)
    dropped = sorted(left_out)[0]
    del left_out[dropped]
    partial = str(tmp_path / "partial_proposals.json")
    with open(partial, "w") as stream:
        json.dump(left_out, stream)
    report = alignment.grounding_report(run_dir, data.replace(boxes=partial), truth_path, betas=[0], confidence_weights=[0.5])
    assert report["methods"]["confidence=0.5:argmax"]["num_phrases"] == methods["argmax"]["num_phrases"]


def test_the_confidence_prior_needs_box_scores(trained_run, tmp_path):
    run_dir, data, world_folder, _ = trained_run
    truth_path = str(tmp_path / "truth.json")
    _real_format_truth(world_folder, truth_path)
    with pytest.raises(ValueError, match=r"boxes\.json: a confidence weight > 0 needs each image's box scores .* has none"):
        alignment.grounding_report(run_dir, data, truth_path, betas=[0], confidence_weights=[0.5])  # human boxes: no scores
    with pytest.raises(ValueError, match=r"a confidence weight must be a finite number >= 0, received -1"):
        alignment.grounding_report(run_dir, data, truth_path, betas=[0], confidence_weights=[-1])
    with pytest.raises(ValueError, match=r"confidence_weights must hold one or more weights .* received \[\]"):
        alignment.grounding_report(run_dir, data, truth_path, betas=[0], confidence_weights=[])
