"""The main job's stages on a tiny synthetic world in Karpathy JSON: completes, skips, resumes, refuses.

One pipeline run is shared by the module (a first attempt interrupted in the captioners stage, then
the rerun that resumes it); the other tests replace every stage by one that fails if called.
"""

import dataclasses
import json
import os

import pytest

from vsa_tf.config import QUICK_SETTINGS, DataConfig, PipelineConfig
from vsa_tf.data import synthetic
from vsa_tf.jobs import captioning, pipeline

TINY_SETTINGS = dict(
    QUICK_SETTINGS, alignment_epochs=1, region_dim=16, caption_hidden=16, betas=(0.0, 1.0), caption_eval_images=4,
    run_embedding=False,
)


def tiny_world(folder, counts=(24, 6, 6)):
    synthetic.generate_world(str(folder), num_images=None, seed=0, split_counts=dict(zip(("train", "val", "test"), counts)))
    return folder


def _markers(out):
    return {name: pipeline.read_marker(pipeline.stages_lib.PipelineFolders(str(out)), name) for name in pipeline.STAGE_NAMES}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    world = tiny_world(tmp_path_factory.mktemp("world"))
    config = PipelineConfig(
        data=DataConfig(dataset=str(world / "dataset.json"), images=str(world / "images"), boxes=str(world / "boxes.json"),
                        image_size=(48, 64), min_word_count=1),
        truth=str(world / "truth.json"), saved_models=str(tmp_path_factory.mktemp("saved_models")), **TINY_SETTINGS,
    )
    out = tmp_path_factory.mktemp("pipeline")
    real_train = captioning.train_captioner
    calls = []

    def interrupted(*args, **kwargs):  # the region captioner's run is interrupted after the full-frame one finished
        calls.append(kwargs.get("run_dir"))
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return real_train(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(captioning, "train_captioner", interrupted)
        with pytest.raises(RuntimeError, match="interrupted"):
            pipeline.run_pipeline(config, str(out))
    first = _markers(out)
    summary = pipeline.run_pipeline(config, str(out))
    return {"config": config, "out": out, "first": first, "summary": summary}


def _failing_stages(monkeypatch):
    def fail(context):
        raise AssertionError("a stage ran")

    monkeypatch.setattr(pipeline, "ALL_STAGES", tuple(dataclasses.replace(stage, run=fail) for stage in pipeline.ALL_STAGES))


def test_pipeline_completes_with_every_stage_and_the_report(shared):
    summary, out = shared["summary"], shared["out"]
    names = [stage.name for stage in pipeline.pipeline_stages(shared["config"])]
    assert names == ["validate", "regions", "alignment", "retrieval", "snippets", "captioners", "captions", "export", "report"]
    markers = _markers(out)
    assert all(markers[name] is not None for name in names)
    assert summary["evaluation_split"] == "test"
    for name in ("BRNN (ours)", "Bag of words"):
        assert summary["retrieval"][name]["n_images"] == 6 and summary["retrieval"][name]["n_sentences"] == 30
    assert set(summary["alignment_accuracy"]) == {"0.0", "1.0"}
    for metrics in summary["alignment_accuracy"].values():  # each β also with box-only labels, on the same phrases
        assert 0.0 <= metrics["boxes_only"]["phrase_accuracy"] <= 1.0
        assert metrics["boxes_only"]["num_phrases"] == metrics["num_phrases"]
    assert "Bleu_4" in summary["captions"]["beam 3"]["model"]
    assert {"region_model", "full_frame_model"} <= set(summary["region_captions"])
    assert set(summary["stage_seconds"]) == set(names) - {"report"}
    html = open(summary["report"], encoding="utf-8").read()
    assert "Image-sentence retrieval" in html and "captions_full_frame.png" in html and "Phrase %, boxes only" in html
    assert json.loads((out / "summary.json").read_text())["retrieval"] == summary["retrieval"]
    assert os.path.exists(os.path.join(shared["config"].saved_models, "captioner", "1", "saved_model.pb"))


def test_an_interrupted_stage_resumes_and_the_finished_ones_are_kept(shared):
    first, markers, out = shared["first"], _markers(shared["out"]), shared["out"]
    for name in ("validate", "regions", "alignment", "retrieval", "snippets"):
        assert first[name] is not None and markers[name]["finished"] == first[name]["finished"]
        assert markers[name]["seconds"] == first[name]["seconds"]
    assert first["captioners"] is None and markers["captioners"] is not None
    # The full-frame captioner finished before the interruption: the rerun resumed its folder (one epoch, not two).
    history = (out / "runs" / "caption_full_frame" / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + shared["config"].caption_epochs


def test_a_second_run_skips_every_stage(shared, monkeypatch, capsys):
    _failing_stages(monkeypatch)
    before = _markers(shared["out"])
    summary = pipeline.run_pipeline(shared["config"], str(shared["out"]))
    assert _markers(shared["out"]) == before
    assert summary["retrieval"] == shared["summary"]["retrieval"]
    assert capsys.readouterr().out.count("done before, skipped") == 9


def test_stages_runs_only_those(shared, monkeypatch, capsys):
    before = _markers(shared["out"])
    real = {stage.name: stage.run for stage in pipeline.ALL_STAGES}
    _failing_stages(monkeypatch)
    monkeypatch.setattr(pipeline, "ALL_STAGES", tuple(
        dataclasses.replace(stage, run=real["report"]) if stage.name == "report" else stage for stage in pipeline.ALL_STAGES
    ))
    pipeline.run_pipeline(shared["config"], str(shared["out"]), stages=["report"])
    after = _markers(shared["out"])
    assert {name for name in after if after[name] != before[name]} == {"report"}
    output = capsys.readouterr().out
    assert "[stage 9/9] report done in" in output and "ETA 0s" in output
    with pytest.raises(ValueError, match=r"unknown stage\(s\) \['proposals'\]"):
        pipeline.run_pipeline(shared["config"], str(shared["out"]), stages=["proposals"])


def test_other_settings_are_refused_but_resumable_fields_are_not(shared, monkeypatch):
    _failing_stages(monkeypatch)
    with pytest.raises(ValueError, match=r"other settings \(region_dim: 16 there, 8 now\)"):
        pipeline.run_pipeline(shared["config"].replace(region_dim=8), str(shared["out"]))
    pipeline.run_pipeline(shared["config"].replace(caption_epochs=3), str(shared["out"]))  # all done: nothing runs


def test_a_dataset_is_required(tmp_path):
    with pytest.raises(ValueError, match="needs a dataset and its images"):
        pipeline.run_pipeline(PipelineConfig(), str(tmp_path))


def test_cached_features_need_the_backbone_weights(tmp_path):
    config = PipelineConfig(data=DataConfig(dataset="d.json", images="images"), feature_mode="cached")
    with pytest.raises(ValueError, match="feature_mode 'cached' needs backbone_weights"):
        pipeline.run_pipeline(config, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_snippets_with_val_as_the_evaluation_split_reuse_the_beta_tables_scoring(shared, tmp_path):
    # A dataset without a test split: the β table is measured on val, and val's snippets for the region
    # captioner come from that one scoring (snippet_beta 2.0 is not among the table's β).
    from vsa_tf.align.snippets import read_snippets
    from vsa_tf.data.readers import read_dataset
    from vsa_tf.jobs import alignment
    from vsa_tf.jobs.demo import PipelineFolders, snippet_alignment

    config = dataclasses.replace(shared["config"], snippet_beta=2.0)
    folders = PipelineFolders(str(tmp_path / "val_only"))
    os.makedirs(folders.runs)
    os.makedirs(folders.figures)
    brnn = str(shared["out"] / "runs" / "alignment_brnn")
    truth = json.loads(open(config.truth).read())
    accuracy, _ = snippet_alignment(config, brnn, read_dataset(config.data.dataset), truth, config.truth, folders, split="val")
    assert set(accuracy) == {"0.0", "1.0"}
    assert read_snippets(folders.val_snippets) == alignment.align_split(brnn, split="val", beta=2.0)
    assert read_snippets(folders.train_snippets) == alignment.align_split(brnn, split="train", beta=2.0)


def test_cached_mode_trains_the_captioners_on_the_cached_features_and_table3_on_each_truth_objects_own(tmp_path, monkeypatch):
    from tests.pretrained.tiny_efficientnet import tiny_feature_model, write_tiny_weights
    from vsa_tf.data.features import FeatureStore
    from vsa_tf.data.readers import read_dataset
    from vsa_tf.evaluation.alignment import read_truth, truth_boxes
    from vsa_tf.jobs import features as features_job
    from vsa_tf.jobs.run_folder import Run

    world = tiny_world(tmp_path / "world", counts=(16, 6, 0))  # no test split, as the shared Flickr8k copy: val is evaluated
    weights = write_tiny_weights(tmp_path / "tiny.weights.h5")
    real_cache = features_job.cache_region_features
    monkeypatch.setattr(  # the tiny EfficientNet-Lite0 stands in for the ImageNet one
        features_job, "cache_region_features", lambda *args, **kwargs: real_cache(*args, feature_model=tiny_feature_model(weights), **kwargs)
    )
    config = PipelineConfig(
        data=DataConfig(dataset=str(world / "dataset.json"), images=str(world / "images"), boxes=str(world / "boxes.json"),
                        image_size=(64, 64), min_word_count=1),
        truth=str(world / "truth.json"), feature_mode="cached", backbone_weights=weights,
        saved_models=str(tmp_path / "saved_models"), **dict(TINY_SETTINGS, bag_of_words=False, run_embedding=True, embedding_epochs=1),
    )
    out = tmp_path / "out"
    summary = pipeline.run_pipeline(config, str(out))
    assert "features" in [stage.name for stage in pipeline.pipeline_stages(config)]
    brnn = Run.load(str(out / "runs" / "alignment_brnn")).config  # a dataset's aligner: hardest negatives (quick: after 1 epoch)
    assert (brnn.hardest_negative, brnn.warmup_epochs) == (True, 1)
    for name in ("caption_full_frame", "caption_regions"):
        run = Run.load(str(out / "runs" / name))
        assert run.config.image.mode == "cached" and run.config.data.features == str(out / "features")
    # Table 3 read every truth object of the evaluated images from the truth boxes' own features.
    assert summary["evaluation_split"] == "val"
    html = open(summary["report"], encoding="utf-8").read()  # the report names the split it scored
    assert "coco-caption metrics on the val split" in html and "Generated captions on val images" in html
    assert "on the test split" not in html
    test_records = read_dataset(config.data.dataset).split("val")[: config.caption_eval_images]
    truth = read_truth(config.truth)
    region_report = summary["region_captions"]
    assert region_report["num_regions_without_features"] == 0
    assert region_report["num_regions"] == len(captioning.region_references(test_records[: config.caption_eval_images], truth))
    store = FeatureStore(str(out / "truth_features"))
    assert sorted(store.filenames) == sorted(record.filename for record in test_records)
    written = json.loads((out / "runs" / "truth_boxes.json").read_text())
    assert written == truth_boxes(truth, store.filenames)
    assert summary["caption_figures"]["regions"] and all(os.path.exists(path) for path in summary["caption_figures"]["regions"])
    # The joint embeddings read the whole image's cached feature; a synthetic truth is scored, not sheeted, in pixel mode only.
    assert set(summary["embedding"]["retrieval"]) == {"Kiros lstm", "Kiros linear"}
    assert all(report["n_images"] == 6 for report in summary["embedding"]["retrieval"].values())  # scored on val
    assert Run.load(str(out / "runs" / "embedding_linear")).config.image.mode == "cached"
    assert os.path.exists(os.path.join(config.saved_models, "captioner", "1", "saved_model.pb"))


def test_a_folder_saved_with_an_explicit_feature_mode_accepts_the_same_mode_resolved(tmp_path):
    data = DataConfig(dataset="d.json", images="images")
    pipeline.check_same_config(PipelineConfig(data=data, feature_mode="pixels"), str(tmp_path))
    pipeline.check_same_config(PipelineConfig(data=data), str(tmp_path))  # None without weights is "pixels"
    with pytest.raises(ValueError, match=r"feature_mode: 'pixels' there, 'cached' now"):
        pipeline.check_same_config(PipelineConfig(data=data, backbone_weights="w.weights.h5"), str(tmp_path))


def test_a_folder_saved_before_the_alignment_optimizer_setting_is_read_as_sgd_and_accepts_the_demo(tmp_path):
    from vsa_tf.config import DemoConfig, load_config

    demo = DemoConfig.quick_config().pipeline_config()
    saved = {key: value for key, value in demo.to_dict().items() if key not in ("alignment_optimizer", "alignment_learning_rate")}
    (tmp_path / pipeline.CONFIG_FILE).write_text(json.dumps(saved))
    loaded = load_config(PipelineConfig, str(tmp_path / pipeline.CONFIG_FILE))
    assert (loaded.alignment_optimizer, loaded.alignment_learning_rate) == ("sgd", 1e-4)  # what those aligners trained with
    pipeline.check_same_config(demo, str(tmp_path))  # the demo's rerun is accepted
    with pytest.raises(ValueError, match=r"alignment_optimizer: 'sgd' there, 'adam' now"):
        pipeline.check_same_config(demo.replace(alignment_optimizer="adam"), str(tmp_path))
    with pytest.raises(ValueError, match=r"alignment_learning_rate must be a finite number > 0, received 0"):
        PipelineConfig(alignment_learning_rate=0)


def test_a_dataset_folder_saved_before_the_hardest_negative_setting_is_read_as_the_summed_loss(tmp_path):
    from vsa_tf.config import load_config

    old = PipelineConfig(data=DataConfig(dataset="d.json", images="images"), alignment_hardest_negative=False, alignment_warmup_epochs=0)
    saved = {key: value for key, value in old.to_dict().items() if key not in ("alignment_hardest_negative", "alignment_warmup_epochs")}
    (tmp_path / pipeline.CONFIG_FILE).write_text(json.dumps(saved))
    loaded = load_config(PipelineConfig, str(tmp_path / pipeline.CONFIG_FILE))
    assert (loaded.alignment_hardest_negative, loaded.alignment_warmup_epochs) == (False, 0)  # what those aligners trained with
    pipeline.check_same_config(old, str(tmp_path))
    with pytest.raises(ValueError, match=r"alignment_hardest_negative: False there, True now"):  # today's default is refused there
        pipeline.check_same_config(old.replace(alignment_hardest_negative=True, alignment_warmup_epochs=2), str(tmp_path))
