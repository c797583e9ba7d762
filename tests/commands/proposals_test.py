import json

from vsa_tf import cli

TRUTH = {"images": {
    "a.jpg": {"width": 100, "height": 60, "objects": [{"box": [0, 0, 50, 30]}, {"box": [70, 40, 100, 60]}], "sentences": []},
    "b.jpg": {"width": 100, "height": 60, "objects": [{"box": [0, 0, 100, 60]}], "sentences": []},
}}


def test_evaluate_proposals_prints_and_writes_recall_beside_the_baselines(tmp_path, capsys):
    truth_path, boxes_path, out_path = tmp_path / "truth.json", tmp_path / "boxes.json", tmp_path / "out.json"
    truth_path.write_text(json.dumps(TRUTH))
    boxes_path.write_text(json.dumps({"a.jpg": [[70, 40, 100, 60], [1, 1, 50, 30]], "b.jpg": [[0, 0, 10, 10]]}))
    code = cli.main(["evaluate-proposals", "--boxes", str(boxes_path), "--truth", str(truth_path), "--recall-at", "1", "2",
                     "--json", str(out_path)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["proposals"]["recall_at"] == {"1": 33.33, "2": 66.67}
    assert printed["baselines"]["whole_image"]["recall_at"] == {"1": 33.33, "2": 33.33}
    assert printed["proposals"]["num_boxes"] == 3 and json.loads(out_path.read_text()) == printed


def test_evaluate_proposals_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    truth_path = tmp_path / "truth.json"
    truth_path.write_text(json.dumps(TRUTH))
    assert cli.main(["evaluate-proposals", "--boxes", "none", "--truth", str(truth_path)]) == 2
    assert "--boxes none has no boxes to evaluate" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"z.jpg": [[0, 0, 1, 1]]}))
    assert cli.main(["evaluate-proposals", "--boxes", str(other), "--truth", str(truth_path)]) == 2
    assert "the boxes name none of the truth's images" in capsys.readouterr().err
