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
    html = (report / "index.html").read_text()
    figures = [name for name in os.listdir(report) if name.endswith(".png")]
    assert len(figures) >= 7
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
