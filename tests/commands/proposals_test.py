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


def test_train_proposals_propose_and_evaluate_on_a_tiny_world(tmp_path, capsys):
    from vsa_tf.data.synthetic import generate_world

    world = str(tmp_path / "world")
    generate_world(world, num_images=16, seed=1, min_side=48, max_side=64)
    dataset, images, truth = f"{world}/dataset.json", f"{world}/images", f"{world}/truth.json"
    run, out = str(tmp_path / "run"), str(tmp_path / "proposed.json")
    assert cli.main(["train-proposals", "--dataset", dataset, "--images", images, "--boxes", f"{world}/boxes.json", "--out", run,
                     "--image-size", "32", "32", "--backbone-filters", "4", "8", "--anchor-sizes", "8", "16", "--filters", "4",
                     "--epochs", "1", "--batch-size", "8", "--max-proposals", "4"]) == 0
    printed = capsys.readouterr().out
    assert f"proposals run written to {run}" in printed and '"baselines"' in printed
    assert cli.main(["propose", "--run", run, "--split", "test", "--out", out]) == 0
    proposed = json.loads(open(out).read())
    assert proposed and all(len(entry["boxes"]) == len(entry["scores"]) <= 4 for entry in proposed.values())
    capsys.readouterr()
    assert cli.main(["evaluate-proposals", "--boxes", out, "--truth", truth]) == 0
    assert json.loads(capsys.readouterr().out)["proposals"]["num_images"] == len(proposed)

    # A boxes file with no box for any train-split image: a one-line error, nothing written.
    with open(dataset) as stream:
        held_out = [image["filename"] for image in json.load(stream)["images"] if image["split"] != "train"]
    boxes = tmp_path / "held_out_boxes.json"
    boxes.write_text(json.dumps({name: [[1, 1, 20, 20]] for name in held_out}))
    assert cli.main(["train-proposals", "--dataset", dataset, "--images", images, "--boxes", str(boxes), "--out", str(tmp_path / "none"),
                     "--image-size", "32", "32", "--backbone-filters", "4", "8"]) == 2
    assert "no boxes for any train-split image" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert cli.main(["propose", "--run", run, "--dataset", dataset, "--out", out]) == 2
    assert "give both --dataset and --images" in capsys.readouterr().err
