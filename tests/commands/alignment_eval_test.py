import json

import pytest

from vsa_tf import cli
from vsa_tf.align.snippets import write_snippets

TRUTH = {
    "images": {
        "a.png": {
            "width": 10,
            "height": 10,
            "objects": [{"box": [0, 0, 5, 5], "shape": "ball", "color": "red", "size": "small"}],
            "sentences": [{"phrases": [{"start": 0, "end": 2, "object": 0}]}],
        }
    }
}


def test_evaluate_alignment_command_prints_and_writes_json(tmp_path, capsys):
    snippets_path, truth_path, out_path = tmp_path / "s.json", tmp_path / "truth.json", tmp_path / "out.json"
    write_snippets(snippets_path, [
        {"filename": "a.png", "sentence": 0, "start": 0, "end": 2, "words": ["red", "ball"], "region": 1,
         "box": [0.0, 0.0, 5.0, 5.0]},
    ])
    truth_path.write_text(json.dumps(TRUTH))
    code = cli.main(["evaluate-alignment", "--snippets", str(snippets_path), "--truth", str(truth_path),
                     "--json", str(out_path)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["phrase_accuracy"] == 1.0 and printed["word_accuracy"] == 1.0
    assert json.loads(out_path.read_text()) == printed


def test_evaluate_alignment_command_reports_bad_file(tmp_path, capsys):
    truth_path = tmp_path / "truth.json"
    truth_path.write_text(json.dumps(TRUTH))
    code = cli.main(["evaluate-alignment", "--snippets", str(tmp_path / "none.json"), "--truth", str(truth_path)])
    assert code == 2
    assert "Snippets file not found" in capsys.readouterr().err


def test_run_form_calls_the_grounding_report(tmp_path, capsys, monkeypatch):
    from vsa_tf.jobs import alignment

    calls = []

    def fake_report(run, data_config, truth, **options):
        calls.append((run, data_config, truth, options))
        return {"run": run, "methods": {"argmax": {"phrase_accuracy_head": 0.5, "phrase_accuracy_all_words": 0.25, "num_phrases": 4}}}

    monkeypatch.setattr(alignment, "grounding_report", fake_report)
    out_path = tmp_path / "grounding.json"
    code = cli.main([
        "evaluate-alignment", "--run", "RUN", "--dataset", "d.json", "--images", "img", "--proposals", "PROP",
        "--features", "feat", "--truth", "t.json", "--betas", "0", "2", "--baseline-run", "BOW", "--baseline-run", "BOW2",
        "--seed", "3", "--json", str(out_path),
    ])
    assert code == 0
    run, data_config, truth, options = calls[0]
    assert (run, truth) == ("RUN", "t.json")
    assert (data_config.dataset, data_config.images, data_config.proposals, data_config.features) == ("d.json", "img", "PROP", "feat")
    assert data_config.boxes is None
    assert options == {"split": "val", "betas": [0.0, 2.0], "baseline_runs": ["BOW", "BOW2"], "seed": 3, "iou_threshold": 0.5, "max_words": None,
                       "confidence_weights": [0.0]}
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["methods"]["argmax"]["phrase_accuracy_head"] == 0.5 and json.loads(out_path.read_text()) == printed
    assert "| argmax | 50.0 % | 25.0 % | 4 |" in captured.err.splitlines()  # the table, on stderr

    assert cli.main(["evaluate-alignment", "--run", "RUN", "--boxes", "b.json", "--truth", "t.json", "--split", "test"]) == 0
    _, data_config, _, options = calls[1]
    assert data_config.boxes == "b.json" and data_config.proposals is None
    assert options["split"] == "test" and options["betas"] == [0.0, 0.5, 1.0, 2.0, 5.0] and options["baseline_runs"] == []
    assert cli.main(["evaluate-alignment", "--run", "RUN", "--truth", "t.json", "--max-words", "64"]) == 0
    assert calls[2][3]["max_words"] == 64
    assert cli.main(["evaluate-alignment", "--run", "RUN", "--truth", "t.json", "--confidence-weights", "0", "0.5"]) == 0
    assert calls[3][3]["confidence_weights"] == [0.0, 0.5]


def test_exclusive_options(tmp_path, capsys):
    with pytest.raises(SystemExit):  # one of --run and --snippets
        cli.main(["evaluate-alignment", "--run", "RUN", "--snippets", "s.json", "--truth", "t.json"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["evaluate-alignment", "--truth", "t.json"])
    assert "one of the arguments --snippets --run is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["evaluate-alignment", "--run", "RUN", "--boxes", "b.json", "--proposals", "P", "--truth", "t.json"])
    assert "not allowed with argument" in capsys.readouterr().err
    # Options of the --run form refused with --snippets, in one line.
    code = cli.main(["evaluate-alignment", "--snippets", "s.json", "--truth", "t.json", "--dataset", "d.json",
                     "--baseline-run", "BOW"])
    assert code == 2
    assert "--dataset, --baseline-run only go with --run, received them with --snippets s.json" in capsys.readouterr().err
    code = cli.main(["evaluate-alignment", "--snippets", "s.json", "--truth", "t.json", "--confidence-weights", "1"])
    assert code == 2
    assert "--confidence-weights only go with --run" in capsys.readouterr().err


def test_truth_boxes_writes_each_images_object_boxes_largest_first(tmp_path, capsys):
    truth = {"images": {
        "a.png": dict(TRUTH["images"]["a.png"], objects=[
            {"box": [0, 0, 2, 2], "phrase": "a cup"}, {"box": [1, 1, 9, 9], "phrase": "a table"}, {"box": [0, 0, 2, 2], "phrase": "it"},
        ]),
        "b.png": dict(TRUTH["images"]["a.png"], objects=[{"box": [3, 3, 4, 8], "phrase": "a pole"}], sentences=[]),
        "c.png": dict(TRUTH["images"]["a.png"], objects=[], sentences=[]),
    }}
    truth["images"]["a.png"]["sentences"] = [{"phrases": [{"start": 0, "end": 2, "object": 1}]}]
    truth_path, out = tmp_path / "truth.json", tmp_path / "boxes.json"
    truth_path.write_text(json.dumps(truth))
    assert cli.main(["truth-boxes", "--truth", str(truth_path), "--out", str(out)]) == 0
    # Largest first, the repeated box once, images without objects left out.
    assert json.loads(out.read_text()) == {"a.png": [[1.0, 1.0, 9.0, 9.0], [0.0, 0.0, 2.0, 2.0]], "b.png": [[3.0, 3.0, 4.0, 8.0]]}
    assert "3 boxes of 2 images written" in capsys.readouterr().err
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"images": [
        {"filename": name, "split": split, "sentences": [{"tokens": ["a", "cup"], "raw": "a cup"}]}
        for name, split in (("a.png", "train"), ("b.png", "val"), ("c.png", "val"))
    ]}))
    assert cli.main(["truth-boxes", "--truth", str(truth_path), "--dataset", str(dataset), "--split", "val", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {"b.png": [[3.0, 3.0, 4.0, 8.0]]}
    assert cli.main(["truth-boxes", "--truth", str(truth_path), "--split", "val", "--out", str(out)]) == 2
    assert "--dataset and --split go together, received --dataset None --split val" in capsys.readouterr().err
