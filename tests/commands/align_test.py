import json
import os

from vsa_tf import cli
from vsa_tf.data import synthetic


def test_train_evaluate_align_and_plot(tmp_path, capsys):
    world = str(tmp_path / "world")
    synthetic.generate_world(world, num_images=None, split_counts=(10, 2, 3), seed=1, min_side=48, max_side=56,
                             max_objects=2, sentences_per_image=2)
    data = ["--dataset", os.path.join(world, "dataset.json"), "--images", os.path.join(world, "images"),
            "--boxes", os.path.join(world, "boxes.json")]
    run = str(tmp_path / "run")
    code = cli.main(["train-align", *data, "--out", run, "--image-size", "32", "32", "--max-boxes", "3",
                     "--min-word-count", "1", "--region-dim", "8", "--embedding-dim", "4", "--hidden-dim", "6",
                     "--batch-size", "8", "--epochs", "1", "--dropout", "0"])
    assert code == 0
    out = capsys.readouterr().out  # the fit progress, then the summary JSON
    assert json.loads(out[out.index('{\n  "run"'):])["test"]["n_images"] == 3

    metrics_path = str(tmp_path / "retrieval.json")
    assert cli.main(["evaluate-retrieval", "--run", run, *data, "--split", "test", "--json", metrics_path]) == 0
    with open(metrics_path) as stream:
        metrics = json.load(stream)
    assert metrics["n_sentences"] == 6 and set(metrics["image_annotation"]) == {"r1", "r5", "r10", "medr", "meanr"}

    snippets_path = str(tmp_path / "snippets.json")
    assert cli.main(["align", "--run", run, "--split", "val", "--beta", "0.5", "--out", snippets_path]) == 0
    with open(snippets_path) as stream:
        snippets = json.load(stream)
    assert {snippet["sentence"] for snippet in snippets} == {0, 1}

    figure = str(tmp_path / "figure.png")
    assert cli.main(["plot-alignment", "--run", run, "--split", "val", "--out", figure]) == 0
    assert os.path.getsize(figure) > 1000


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    code = cli.main(["train-align", "--dataset", str(tmp_path / "none.json"), "--images", str(tmp_path), "--out", str(tmp_path / "run")])
    assert code == 2
    error = capsys.readouterr().err
    assert "vsa-tf train-align: error:" in error and "none.json" in error
    assert not os.path.exists(tmp_path / "run")
    assert cli.main(["evaluate-retrieval", "--run", str(tmp_path / "nothing")]) == 2
    assert "Run folder not found" in capsys.readouterr().err


_TINY_ALIGN = ["--image-size", "32", "32", "--min-word-count", "1", "--region-dim", "8", "--embedding-dim", "4",
               "--hidden-dim", "6", "--batch-size", "4", "--epochs", "1", "--dropout", "0"]
_CAPTIONS = ["a red square", "a blue circle", "a green square", "a red circle", "a blue square", "a green circle"]


def _tiny_images(folder, count=6):
    from PIL import Image

    os.makedirs(folder)
    names = [f"image{index}.jpg" for index in range(count)]
    for index, name in enumerate(names):
        Image.new("RGB", (40, 36), (40 * index, 255 - 40 * index, 90)).save(os.path.join(folder, name))
    return names


def test_train_align_takes_the_split_of_a_coco_file_whose_name_does_not_say_it(tmp_path, capsys):
    names = _tiny_images(str(tmp_path / "images"))
    coco = {
        "images": [{"id": index, "file_name": name} for index, name in enumerate(names)],
        "annotations": [{"id": index, "image_id": index, "caption": caption} for index, caption in enumerate(_CAPTIONS)],
    }
    dataset = tmp_path / "captions.json"
    dataset.write_text(json.dumps(coco))
    data = ["--dataset", str(dataset), "--images", str(tmp_path / "images")]
    run = str(tmp_path / "run")
    assert cli.main(["train-align", *data, "--out", run, *_TINY_ALIGN]) == 2
    assert "give it with --split-of-file" in capsys.readouterr().err
    assert cli.main(["train-align", *data, "--split-of-file", "train", "--out", run, *_TINY_ALIGN]) == 0
    with open(os.path.join(run, "config.json")) as stream:
        assert json.load(stream)["data"]["split_of_file"] == "train"
    # Evaluation reads the run's own file with the run's split.
    assert cli.main(["evaluate-retrieval", "--run", run, "--split", "train"]) == 0


def test_train_align_reads_a_flickr_token_file_with_its_split_lists(tmp_path):
    names = _tiny_images(str(tmp_path / "images"))
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("".join(f"{name}#0\t{caption}\n" for name, caption in zip(names, _CAPTIONS)))
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("\n".join(names[:4]) + "\n")
    (tmp_path / "lists" / "val.txt").write_text("\n".join(names[4:]) + "\n")
    run = str(tmp_path / "run")
    assert cli.main(["train-align", "--dataset", str(tokens), "--images", str(tmp_path / "images"), "--split-files",
                     str(tmp_path / "lists" / "train.txt"), str(tmp_path / "lists" / "val.txt"), "-",
                     "--out", run, *_TINY_ALIGN]) == 0
    with open(os.path.join(run, "config.json")) as stream:
        assert json.load(stream)["data"]["split_files"] == {
            "train": str(tmp_path / "lists" / "train.txt"), "val": str(tmp_path / "lists" / "val.txt")
        }
