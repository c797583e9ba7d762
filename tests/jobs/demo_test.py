"""The main job end to end in its --quick form (a smoke run: the numbers are not meaningful)."""

import json
import os
import statistics
import subprocess
import sys

from tests.helpers.recall import assert_same_recalls
from vsa_tf.data.readers import read_dataset
from vsa_tf.evaluation.oracle import caption_oracle
from vsa_tf.jobs import alignment


def test_quick_demo_writes_report_exports_and_summary(tmp_path):
    out, saved_models, report = tmp_path / "demo", tmp_path / "saved_models", tmp_path / "report"
    completed = subprocess.run(
        [sys.executable, "-m", "vsa_tf", "demo", "--quick", "--out", str(out), "--saved-models", str(saved_models),
         "--report", str(report)],
        capture_output=True, text=True, timeout=900, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "Demo finished" in completed.stdout
    summary = json.loads((out / "summary.json").read_text())
    for name, folder in (("BRNN (ours)", "alignment_brnn"), ("Bag of words", "alignment_bow")):
        metrics = summary["retrieval"][name]
        assert metrics["n_images"] == 60 and metrics["n_sentences"] == 300
        # Table 1's recalls are those of the run's test score matrix, ranked here independently.
        scores, sentence_image, _ = alignment.retrieval_scores(str(out / "runs" / folder), split="test")
        assert scores.shape == (60, 300)
        assert_same_recalls(metrics, scores, sentence_image)
        assert json.loads((out / "runs" / folder / "retrieval_test.json").read_text()) == metrics
    assert set(summary["alignment_accuracy"]) == {"0.0", "1.0", "5.0"}
    assert "Bleu_4" in summary["captions"]["beam 3"]["model"]
    assert {"region_model", "full_frame_model", "ranking_baseline"} <= set(summary["region_captions"])
    oracle = summary["caption_oracle"]
    assert oracle["most_probable"]["CIDEr"] > 0 and oracle["greedy"]["CIDEr"] > 0
    # The median, over the captioned test images, of each image's oracle mode share (drawn again here).
    records = read_dataset(str(out / "world" / "dataset.json")).split("test")[: summary["config"]["caption_eval_images"]]
    truth = json.loads((out / "world" / "truth.json").read_text())
    shares = [caption_oracle(truth["images"][record.filename], samples=oracle["samples"], seed=index)["mode_frequency"]
              for index, record in enumerate(records)]
    assert len(shares) == 20 and oracle["median_mode_frequency"] == statistics.median(shares)
    _check_proposals(summary["proposals"], out, truth)
    html = (report / "index.html").read_text()
    assert "Generator&#x27;s boxes vs learned proposals" in html and "_proposals.png" in html
    figures = [name for name in os.listdir(report) if name.endswith(".png")]
    assert len(figures) >= 8
    for name in figures:
        assert f'src="{name}"' in html
    assert (saved_models / "captioner" / "1" / "saved_model.pb").exists()
    assert (saved_models / "aligner" / "1" / "saved_model.pb").exists()
    assert "captioner" in (saved_models / "models.config").read_text()

    # A second export of the same runs (what a second demo run does) takes the next version.
    from vsa_tf.jobs import export

    again = export.export_models(alignment_run=str(out / "runs" / "alignment_brnn"), caption_run=str(out / "runs" / "caption_full_frame"),
                                 out_dir=str(saved_models), beam=3)
    assert again["captioner"]["version"] == 2 and again["aligner"]["version"] == 2
    assert (saved_models / "captioner" / "1" / "saved_model.pb").exists()


def _check_proposals(proposals, out, truth):
    """The learned-proposals stage: boxes for every test image, recalls and accuracies in range, R@19 recounted."""
    boxes = json.loads((out / "runs" / "proposals_test_boxes.json").read_text())
    test_names = [name for name, image in truth["images"].items() if name in boxes]
    assert len(boxes) == len(test_names) == 60
    for name, entry in boxes.items():
        assert len(entry["boxes"]) == len(entry["scores"]) <= 19 and entry["scores"] == sorted(entry["scores"], reverse=True)
    assert set(proposals["recall"]) == {"generator_boxes", "learned_proposals", "whole_image", "grid_19"}
    for report in proposals["recall"].values():
        assert report["num_images"] == 60 and report["num_boxes"] == proposals["recall"]["grid_19"]["num_boxes"] > 0
        recalls = [report["recall_at"][k] for k in ("1", "5", "10", "19", "50", "100")]
        assert all(0 <= value <= 100 for value in recalls) and recalls == sorted(recalls)
    # R@19 of the learned proposals, counted object by object.
    found = 0
    for name in test_names:
        for obj in truth["images"][name]["objects"]:
            found += any(_iou(box, obj["box"]) >= 0.5 for box in boxes[name]["boxes"][:19])
    assert proposals["recall"]["learned_proposals"]["recall_at"]["19"] == round(100 * found / proposals["recall"]["grid_19"]["num_boxes"], 2)
    phrase = proposals["phrase_accuracy"]
    assert phrase["generator_boxes"]["num_phrases"] == phrase["learned_proposals"]["num_phrases"] > 0
    assert all(0 <= phrase[name]["phrase_accuracy"] <= 1 for name in ("generator_boxes", "learned_proposals"))
    region = proposals["region_captions"]
    assert region["num_images"] == 6 and region["num_regions"] > 0
    for name in ("true_boxes", "generator_boxes", "learned_proposals"):
        assert 0 <= region[name]["Bleu_1"] <= 1
    assert all(0 <= region["matched"][name] <= 1 for name in ("generator_boxes", "learned_proposals"))
    assert os.path.exists(proposals["figures"]["proposals"]) and len(proposals["figures"]["region_captions"]) >= 1


def _iou(first, second):
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - width * height
    return width * height / union
