"""Benchmark: what each command's defaults give on synthetic worlds of seeds nobody tuned on (issue 14).

For every world (`SEED:MIN_SIDE:MAX_SIDE`, generated with `vsa_tf.data.synthetic.generate_world`,
800 images split 640 / 80 / 80) and every named setting, trains with only the data options given,
as a new user would, and prints one JSON row:

- stage `align` (`train-align --dataset --images --boxes`): best val recall sum (R@1+5+10 both ways,
  the checkpoint monitor), epochs trained, test annotation / search R@1, val phrase accuracy of the
  β = 1 MRF snippets against the world's truth (head word in a snippet with IoU >= 0.5), seconds.
  Settings: "defaults" (`AlignmentConfig()`), "paper_sgd" (SGD 1e-4 momentum 0.9, the paper's),
  "adam_2e-4"; each non-default one at the same 12-epoch budget as the sweep that chose the defaults.
- stage `caption` (`train-caption --dataset --images`, then `evaluate-captions --split test --beam 7`):
  CIDEr of the captioner and of the nearest-neighbour baseline, distinct and verbatim fractions,
  seconds. Settings: "defaults" and "no_pretraining" (`image_pretraining="none"`: the CNN learns from
  the image bias alone, what the defaults were before issue 14).

The limit it checks: `defaults` within 3 points of the best setting of its world on the val recall sum
and on phrase accuracy (align); >= 50 % distinct test captions and CIDEr above the nearest-neighbour
baseline (caption). Rows are kept in OUT/results.json, so a killed run resumes with the next row.

    .venv/bin/python benchmarks/default_settings.py --out /tmp/defaults --stage caption
    .venv/bin/python benchmarks/default_settings.py --out /tmp/defaults --stage align --worlds 101:120:160 202:96:128
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from vsa_tf.config import AlignmentConfig, CaptionConfig, DataConfig  # noqa: E402
from vsa_tf.data.synthetic import generate_world  # noqa: E402
from vsa_tf.evaluation.alignment import evaluate_alignment, read_truth  # noqa: E402
from vsa_tf.files import atomic_write_text  # noqa: E402
from vsa_tf.jobs import alignment as alignment_job  # noqa: E402
from vsa_tf.jobs import captioning as caption_job  # noqa: E402

DEFAULT_WORLDS = ("101:120:160", "202:96:128", "303:64:96")
SPLIT_COUNTS = (640, 80, 80)
SWEEP_EPOCHS = 12
ALIGN_SETTINGS = {
    "defaults": {},
    "paper_sgd": {"optimizer": "sgd", "learning_rate": 1e-4, "epochs": SWEEP_EPOCHS, "patience": 0},
    "adam_2e-4": {"optimizer": "adam", "learning_rate": 2e-4, "epochs": SWEEP_EPOCHS, "patience": 0},
    # One axis each away from the defaults at a fixed 12-epoch budget, beside the defaults at that budget.
    "defaults_12": {"epochs": SWEEP_EPOCHS, "patience": 0},
    "image_96": {"data.image_size": (96, 96), "epochs": SWEEP_EPOCHS, "patience": 0},
    "image_160": {"data.image_size": (160, 160), "epochs": SWEEP_EPOCHS, "patience": 0},
    "regions_9": {"data.max_boxes": 9, "epochs": SWEEP_EPOCHS, "patience": 0},
    "batch_50": {"batch_size": 50, "epochs": SWEEP_EPOCHS, "patience": 0},
    "defaults_12_seed1": {"epochs": SWEEP_EPOCHS, "patience": 0, "seed": 1},
    "batch_50_seed1": {"batch_size": 50, "epochs": SWEEP_EPOCHS, "patience": 0, "seed": 1},
    # The defaults given image_160's CPU time: 12 epochs x (160 / 128)^2 ~ 19 epochs at 128 x 128.
    "defaults_19": {"epochs": 19, "patience": 0},
}
CAPTION_SETTINGS = {"defaults": {}, "no_pretraining": {"image_pretraining": "none"}}
# Stage `align_cached`: a real dataset's cached features (`--cached`), every setting at `--epochs` (equal
# epochs of the same model size are equal CPU time), patience off so the curves are comparable.
CACHED_SETTINGS = {
    "defaults": {},
    "l2": {"image.normalization": "l2"},
    "paper_sgd_l2": {"image.normalization": "l2", "optimizer": "sgd", "learning_rate": 5e-5, "region_dim": 1000},
    "adam_2e-4_l2": {"image.normalization": "l2", "learning_rate": 2e-4},
    "adam_batch50_l2": {"image.normalization": "l2", "batch_size": 50},
    "no_normalization": {"image.normalization": "none"},  # the default before this sweep
    # 10 epochs of the default take about the CPU time of 6 epochs of paper_sgd_l2 (h = 1000).
    "defaults_equal_time": {"epochs": 10},
    "defaults_equal_time_seed1": {"epochs": 10, "seed": 1},
    # The bag-of-words ablation (issue 16: the BRNN against it at equal epochs, two seeds each).
    "bag_of_words_equal_time": {"epochs": 10, "sentence_encoder": "bag_of_words"},
    "bag_of_words_equal_time_seed1": {"epochs": 10, "sentence_encoder": "bag_of_words", "seed": 1},
    # Twice the epochs (the BRNN's curve still rose at epoch 10) and the BRNN without dropout.
    "defaults_20": {"epochs": 20},
    "bag_of_words_20": {"epochs": 20, "sentence_encoder": "bag_of_words"},
    "defaults_20_seed1": {"epochs": 20, "seed": 1},
    "bag_of_words_20_seed1": {"epochs": 20, "sentence_encoder": "bag_of_words", "seed": 1},
    "no_dropout_equal_time": {"epochs": 10, "dropout": 0.0},
    # The paper's fixed pretrained word vectors (section 3.1.2; here GloVe 6B-50d from --word-vectors).
    "glove_fixed_equal_time": {"epochs": 10, "embedding_dim": 50, "freeze_word_vectors": True, "word_vectors": "--word-vectors"},
    "bag_of_words_glove_fixed_equal_time": {
        "epochs": 10, "embedding_dim": 50, "freeze_word_vectors": True, "word_vectors": "--word-vectors",
        "sentence_encoder": "bag_of_words",
    },
}
LIMIT_POINTS = 3.0
# The rows that measure the defaults (at some budget); the best of them is the defaults' figure.
DEFAULT_ROWS = ("defaults", "defaults_equal_time", "defaults_12", "defaults_19", "defaults_12_seed1")


def world_folder(out_dir, spec):
    """Generates (once) the world of `spec` = "SEED:MIN_SIDE:MAX_SIDE" and returns its folder."""
    try:
        seed, min_side, max_side = (int(part) for part in spec.split(":"))
    except ValueError:
        raise ValueError(f"--worlds: expected SEED:MIN_SIDE:MAX_SIDE, received {spec!r}") from None
    folder = os.path.join(out_dir, f"world_{seed}_{min_side}x{max_side}")
    if not os.path.exists(os.path.join(folder, "dataset.json")):
        generate_world(folder, seed=seed, num_images=sum(SPLIT_COUNTS), split_counts=SPLIT_COUNTS, min_side=min_side, max_side=max_side, overwrite=True)
    return folder


def data_config(world, boxes):
    return DataConfig(
        dataset=os.path.join(world, "dataset.json"), images=os.path.join(world, "images"),
        boxes=os.path.join(world, "boxes.json") if boxes else None,
    )


def with_overrides(config, overrides):
    """`config` with `overrides` applied; "image.x" and "data.x" keys set the nested configs' fields."""
    nested = {}
    for key, value in overrides.items():
        if "." in key:
            part, field = key.split(".", 1)
            nested.setdefault(part, {})[field] = value
    flat = {key: value for key, value in overrides.items() if "." not in key}
    return config.replace(**{part: getattr(config, part).replace(**fields) for part, fields in nested.items()}, **flat)


def align_row(world, run_dir, overrides):
    config = with_overrides(AlignmentConfig(data=data_config(world, boxes=True)), overrides)
    result = alignment_job.train_alignment(config, run_dir=run_dir, verbose=2)
    recall_sums = [value for value in result.history.get("val_recall_sum", []) if value is not None]
    snippets = alignment_job.align_split(result.run, split="val", beta=1.0)
    accuracy = evaluate_alignment(snippets, read_truth(os.path.join(world, "truth.json")))
    test = result.test or {}
    return {
        "best_val_recall_sum": round(max(recall_sums), 1) if recall_sums else None,
        "epochs_trained": len(result.history.get("loss", [])),
        "epochs_budget": config.epochs,
        "val_phrase_accuracy": round(accuracy["phrase_accuracy"], 3),
        "test_annotation_r1": (test.get("image_annotation") or {}).get("r1"),
        "test_search_r1": (test.get("image_search") or {}).get("r1"),
    }


def cached_data_config(cached):
    dataset, images, boxes, features, _ = cached
    return DataConfig(dataset=dataset, images=images, boxes=boxes, features=features)


def align_cached_row(cached, run_dir, overrides, epochs):
    """One setting on a real dataset's cached features; phrase accuracy against `cached`'s truth file."""
    config = AlignmentConfig(data=cached_data_config(cached), epochs=epochs, patience=0)
    config = with_overrides(config.replace(image=config.image.replace(mode="cached")), overrides)
    result = alignment_job.train_alignment(config, run_dir=run_dir, verbose=2)
    recall_sums = [value for value in result.history.get("val_recall_sum", []) if value is not None]
    snippets = alignment_job.align_split(result.run, split="val", beta=1.0)
    accuracy = evaluate_alignment(snippets, read_truth(cached[4]))
    return {
        "best_val_recall_sum": round(max(recall_sums), 1) if recall_sums else None,
        "val_recall_sum_per_epoch": [round(value, 1) for value in recall_sums],
        "epochs_trained": len(result.history.get("loss", [])),
        "epochs_budget": config.epochs,
        "val_phrase_accuracy": round(accuracy["phrase_accuracy"], 3),
    }


def caption_row(world, run_dir, overrides):
    config = CaptionConfig(data=data_config(world, boxes=False)).replace(**overrides)
    caption_job.train_captioner(config, run_dir=run_dir, verbose=2)
    report = caption_job.evaluate_captions(run_dir, split="test", beam=7)
    return {
        "cider": round(report["model"]["CIDEr"], 3),
        "nearest_neighbour_cider": round(report["nearest_neighbour"]["CIDEr"], 3),
        "distinct_fraction": round(report["distinct_fraction"], 3),
        "verbatim_fraction": round(report["verbatim_fraction"], 3),
        "image_pretraining": config.image_pretraining,
    }


def check(rows, stage):
    """Per world: whether the defaults meet the stated limit (None until every setting is measured)."""
    verdicts = {}
    for world in sorted({row["world"] for row in rows}):
        # The bag-of-words rows are the ablation of issue 16, not candidate defaults of train-align.
        mine = {row["setting"]: row for row in rows if row["world"] == world and not row["setting"].startswith("bag_of_words")}
        # The defaults' rows: "defaults" and, in align_cached, "defaults_equal_time" (the same settings
        # given the CPU time of the slowest setting); the better of them is the defaults' figure.
        defaults = [row for name, row in mine.items() if name in DEFAULT_ROWS]
        if not defaults:
            continue
        default = max(defaults, key=lambda row: row.get("best_val_recall_sum") or row.get("cider") or 0)
        if stage == "caption":
            verdicts[world] = default["distinct_fraction"] >= 0.5 and default["cider"] > default["nearest_neighbour_cider"]
            continue
        best_sum = max(row["best_val_recall_sum"] or 0 for row in mine.values())
        best_accuracy = max(row["val_phrase_accuracy"] for row in mine.values())
        verdicts[world] = (
            (default["best_val_recall_sum"] or 0) >= best_sum - LIMIT_POINTS
            and 100 * default["val_phrase_accuracy"] >= 100 * best_accuracy - LIMIT_POINTS
        )
    return verdicts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="working folder (worlds, runs, results.json)")
    parser.add_argument("--stage", required=True, choices=("align", "caption", "align_cached"))
    parser.add_argument(
        "--cached", nargs=5, default=None, metavar=("DATASET", "IMAGES", "BOXES", "FEATURES", "TRUTH"),
        help="stage align_cached: a real dataset, its boxes, its cached features folder and its truth.json",
    )
    parser.add_argument("--epochs", type=int, default=8, help="stage align_cached: the epochs of every setting")
    parser.add_argument("--worlds", nargs="+", default=list(DEFAULT_WORLDS), metavar="SEED:MIN:MAX")
    parser.add_argument("--settings", nargs="+", default=None, help="setting names (default: all of the stage)")
    parser.add_argument("--word-vectors", default=None, help="pretrained word vectors file of the glove_* settings")
    args = parser.parse_args(argv)
    settings = {"align": ALIGN_SETTINGS, "caption": CAPTION_SETTINGS, "align_cached": CACHED_SETTINGS}[args.stage]
    if (args.stage == "align_cached") != (args.cached is not None):
        raise SystemExit("--cached DATASET IMAGES BOXES FEATURES TRUTH goes with --stage align_cached, and only with it")
    names = args.settings or list(settings)
    unknown = sorted(set(names) - set(settings))
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; the {args.stage} stage has {sorted(settings)}")
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, "results.json")
    rows = []
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as stream:
            rows = json.load(stream)
    for spec in ([os.path.basename(args.cached[0])] if args.cached else args.worlds):
        world = args.cached if args.cached else world_folder(args.out, spec)
        for name in names:
            if any(row["stage"] == args.stage and row["world"] == spec and row["setting"] == name for row in rows):
                continue
            print(f"[{args.stage}] world {spec}, setting {name}", file=sys.stderr, flush=True)
            started = time.time()
            run_dir = os.path.join(args.out, "runs", f"{args.stage}_{os.path.basename(spec)}_{name}")
            overrides = dict(settings[name])
            if overrides.get("word_vectors") == "--word-vectors":
                if not args.word_vectors:
                    raise SystemExit(f"setting {name} needs --word-vectors PATH")
                overrides["word_vectors"] = args.word_vectors
            if args.stage == "align_cached":
                measured = align_cached_row(world, run_dir, overrides, args.epochs)
            else:
                measured = (align_row if args.stage == "align" else caption_row)(world, run_dir, overrides)
            row = {"stage": args.stage, "world": spec, "setting": name, **measured}
            row["seconds"] = round(time.time() - started, 1)
            rows.append(row)
            atomic_write_text(results_path, json.dumps(rows, indent=2) + "\n")
            print(json.dumps(row), flush=True)
    stage_rows = [row for row in rows if row["stage"] == args.stage]
    print(json.dumps({"stage": args.stage, "defaults_meet_the_limit": check(stage_rows, args.stage)}))


if __name__ == "__main__":
    main()
