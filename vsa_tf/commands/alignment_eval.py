"""`vsa-tf evaluate-alignment`: phrase grounding accuracy against a truth.json (synthetic or real phrases);
`vsa-tf truth-boxes`: a truth.json's object boxes as a boxes JSON.

Two forms: `--snippets S --truth T` scores a snippets file (`vsa-tf align`); `--run RUN --dataset D --images I
(--boxes B | --proposals PROP) --truth T` aligns a split with the run at several β and prints the grounding
table beside its baselines (`vsa_tf.jobs.alignment.grounding_report`).
"""

import sys

from vsa_tf import config
from vsa_tf.commands import print_json
from vsa_tf.commands.config_arguments import add_config_arguments, config_from_arguments

# The data locations of the --run form (as `vsa-tf align`): the run's other data settings are kept.
RUN_DATA_FIELDS = ("dataset", "images", "boxes", "proposals", "features", "split_of_file", "split_files")


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate-alignment",
        help="phrase grounding accuracy of a snippets file, or of a run at several β beside baselines, against a truth.json",
        description=(
            "A ground-truth phrase is correct when its head word (its last token) lies in a snippet whose box has "
            "IoU >= the threshold with the phrase's box; 'all words' asks it of every word of the phrase. "
            "With --run: MRF snippets at each --betas value and the per-word argmax, each also with the words "
            "labelled by the boxes only (rows '..._boxes_only': the whole image scores but is not a label), and the "
            "baselines whole image, largest box, random box (seeded) and best box (oracle), all on the same phrases "
            "and regions."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--snippets", help="snippets JSON written by `vsa-tf align`")
    source.add_argument("--run", help="alignment run folder: align --split with it and report the grounding table")
    parser.add_argument("--truth", required=True, help="truth.json (phrase boxes; synthetic world or real, e.g. Flickr8k's)")
    parser.add_argument("--iou-threshold", type=float, default=0.5, help="minimum IoU (default 0.5)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the result here")
    group = parser.add_argument_group("with --run")
    add_config_arguments(group, config.DataConfig, fields=RUN_DATA_FIELDS, config_file=False, default_help="the run's")
    group.add_argument("--split", default="val", help="split to evaluate (default val)")
    group.add_argument("--betas", type=float, nargs="+", default=list(config.GROUNDING_BETAS), metavar="BETA",
                       help="MRF rewards to evaluate (default 0 0.5 1 2 5)")
    group.add_argument("--baseline-run", dest="baseline_runs", action="append", default=[], metavar="RUN",
                       help="another alignment run (e.g. the bag-of-words ablation) scored on the same phrases; repeatable")
    group.add_argument("--seed", type=int, default=0, help="seed of the random-box baseline (default 0)")
    group.add_argument(
        "--max-words", type=int, default=None,
        help="words of each sentence the run reads (default: its training max_words; phrases past it count in "
        "num_phrases_past_max_words, not in the accuracies); the BRNN and the bag of words read any length",
    )
    group.add_argument(
        "--confidence-weights", nargs="+", type=float, default=[0.0], metavar="W",
        help="with --run: weights of the detector-confidence prior (each w > 0 repeats the model rows as "
        "'confidence=<w>:...', scores v.s + w * std * logit(box score)); needs boxes with scores, e.g. a proposals "
        "run or `vsa-tf propose`'s file, and adds the most_confident_box baseline (default: 0, the paper's scores)",
    )
    parser.set_defaults(handler=run_evaluate_alignment)

    boxes = subparsers.add_parser(
        "truth-boxes",
        help="write the object boxes of a truth.json as a boxes JSON (to cache features of every truth region)",
        description=(
            "Writes {filename: [[x0, y0, x1, y1], ...]} (largest first) of the truth's objects; `vsa-tf cache-features "
            "--boxes` on it gives cached-feature runs a feature for every truth region (Table 3 region captions)."
        ),
    )
    boxes.add_argument("--truth", required=True, help="truth.json (synthetic world or real, e.g. Flickr8k's)")
    boxes.add_argument("--out", required=True, help="boxes JSON to write")
    boxes.add_argument("--dataset", default=None, help="optional captions file: keep only the images of --split")
    boxes.add_argument("--split", default=None, help="with --dataset: the split whose images are kept")
    boxes.set_defaults(handler=run_truth_boxes)


def run_truth_boxes(args):
    from vsa_tf.data.readers import read_dataset
    from vsa_tf.evaluation.alignment import write_truth_boxes

    if (args.dataset is None) != (args.split is None):
        raise ValueError(f"--dataset and --split go together, received --dataset {args.dataset} --split {args.split}")
    filenames = None
    if args.dataset is not None:
        records = read_dataset(args.dataset).split(args.split)
        if not records:
            raise ValueError(f"{args.dataset}: the {args.split!r} split is empty")
        filenames = [record.filename for record in records]
    boxes = write_truth_boxes(args.truth, args.out, filenames)
    print(f"{sum(len(value) for value in boxes.values())} boxes of {len(boxes)} images written to {args.out}", file=sys.stderr)
    return 0


def run_evaluate_alignment(args):
    if args.run is None:
        return _evaluate_snippets(args)
    from vsa_tf.evaluation.alignment import grounding_table
    from vsa_tf.jobs import alignment

    data_config = config_from_arguments(args, config.DataConfig, for_run=True)
    report = alignment.grounding_report(
        args.run, data_config, args.truth, split=args.split, betas=args.betas, baseline_runs=args.baseline_runs,
        seed=args.seed, iou_threshold=args.iou_threshold, max_words=args.max_words, confidence_weights=args.confidence_weights,
    )
    print(grounding_table(report), file=sys.stderr)  # the table for people; stdout stays one JSON document
    print_json(report, args.json_path)
    return 0


def _evaluate_snippets(args):
    given = (("--dataset", args.dataset), ("--images", args.images), ("--boxes", args.boxes), ("--proposals", args.proposals),
             ("--features", args.features), ("--baseline-run", args.baseline_runs),
             ("--confidence-weights", args.confidence_weights != [0.0]))
    run_only = [flag for flag, value in given if value]
    if run_only:
        raise ValueError(f"{', '.join(run_only)} only go with --run, received them with --snippets {args.snippets}")
    from vsa_tf.align.snippets import read_snippets
    from vsa_tf.evaluation.alignment import evaluate_alignment, read_truth

    result = evaluate_alignment(read_snippets(args.snippets), read_truth(args.truth), args.iou_threshold)
    result["snippets"] = args.snippets
    print_json(result, args.json_path)
    return 0
