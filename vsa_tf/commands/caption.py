"""`vsa-tf train-caption`, `vsa-tf caption`, `vsa-tf evaluate-captions`, `vsa-tf evaluate-region-captions`."""

import json

from vsa_tf import config
from vsa_tf.commands import PROPOSALS_HELP, add_out_argument, add_strategy_argument, boxes_argument
from vsa_tf.commands.config_arguments import add_config_arguments, config_from_arguments, run_data_config

# The data options of the evaluation commands, applied to the caption run's own data config.
RUN_DATA_FIELDS = (
    "dataset", "images", "features", "image_size", "min_word_count", "restval_to_train", "split_of_file", "split_files",
)
# Region captions of cached-feature runs also need the boxes file the features were cached from.
REGION_RUN_DATA_FIELDS = RUN_DATA_FIELDS + ("boxes",)


def register(subparsers):
    train = subparsers.add_parser(
        "train-caption",
        help="train the multimodal RNN captioner on whole images, or on (region, snippet) pairs",
        description="Trains the multimodal RNN of Karpathy & Fei-Fei 2015 (eqs. 13-15); the run folder gets config.json, "
        "vocabulary.txt, model.weights.h5 (best epoch), backup/ and history.csv.",
    )
    add_out_argument(train, "run folder to write (an interrupted run resumes)")
    # The job sets the image side's mode itself: cached whole-image features when --features is given.
    add_config_arguments(train, config.CaptionConfig, exclude=("image.mode",), required=("data.dataset", "data.images"))
    train.add_argument("--snippets", default=None, help="snippets JSON from `vsa-tf align`: train region captions")
    train.add_argument(
        "--cnn-from-alignment", default=None, metavar="RUN",
        help="pixel-mode alignment run whose trained CNN becomes the image side, kept fixed (see --fine-tune-cnn)",
    )
    train.add_argument(
        "--fine-tune-cnn", action="store_true",
        help="with --cnn-from-alignment: train that CNN further with the captioner instead of keeping it fixed",
    )
    add_strategy_argument(train)
    train.set_defaults(handler=run_train_caption)

    caption = subparsers.add_parser("caption", help="print captions for image files (whole images, or each given box)")
    caption.add_argument("--run", required=True, help="caption run folder")
    caption.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    caption.add_argument("--beam", type=int, default=None, help="beam size (default: the run's, 7; 1 = greedy)")
    regions = caption.add_mutually_exclusive_group()
    regions.add_argument(
        "--boxes", type=boxes_argument, default=None,
        help="boxes JSON keyed by the image path, its trailing components (sub/a.jpg) or its basename; an image with no key is captioned whole, with a warning; 'none' = whole images only",
    )
    regions.add_argument(
        "--proposals", default=None, metavar="RUN",
        help=PROPOSALS_HELP + ": each image's proposal boxes are captioned, printed with their proposal scores (no boxes file needed)",
    )
    caption.add_argument(
        "--max-boxes", type=int, default=None, metavar="K", help="with --proposals: caption each image's best K proposals (default: all)"
    )
    caption.add_argument("--json", dest="json_path", default=None, help="also write the captions here")
    caption.set_defaults(handler=run_caption)

    evaluate = subparsers.add_parser(
        "evaluate-captions",
        help="BLEU/METEOR/ROUGE_L/CIDEr of a caption run, the nearest-neighbour baseline, verbatim fraction (Table 2)",
    )
    evaluate.add_argument("--run", required=True, help="caption run folder")
    _add_run_data_arguments(evaluate)
    evaluate.add_argument("--split", default="test", choices=("val", "test"))
    evaluate.add_argument("--beam", type=int, default=None, help="beam size (default: the run's)")
    evaluate.add_argument("--json", dest="json_path", default=None, help="write the report here")
    evaluate.set_defaults(handler=run_evaluate_captions)

    regions = subparsers.add_parser(
        "evaluate-region-captions",
        help="region captions against a truth.json's object phrases: region vs full-frame model vs ranking (Table 3)",
        description=(
            "Captions every truth object of --split's images that a phrase names, with the region model, the full-frame "
            "model and the ranking baseline, and scores them against the object's phrases. Runs trained on cached "
            "features read each object's cached region: give --features and the --boxes file they were cached from "
            "(`vsa-tf truth-boxes` + `vsa-tf cache-features --boxes` caches every truth object's box)."
        ),
    )
    regions.add_argument("--run", required=True, help="region caption run folder (trained with --snippets)")
    regions.add_argument("--truth", required=True, help="truth.json (synthetic world or real phrases, e.g. Flickr8k's)")
    regions.add_argument("--full-frame-run", default=None, help="full-frame caption run fed the same regions")
    regions.add_argument("--alignment-run", default=None, help="alignment run for the ranking baseline")
    regions.add_argument("--snippets", default=None, help="snippets JSON the ranking baseline retrieves from")
    _add_run_data_arguments(regions, REGION_RUN_DATA_FIELDS)
    regions.add_argument("--split", default="test", choices=("val", "test"))
    regions.add_argument("--beam", type=int, default=None)
    regions.add_argument("--json", dest="json_path", default=None, help="write the report here")
    regions.set_defaults(handler=run_evaluate_region_captions)


def _add_run_data_arguments(parser, fields=RUN_DATA_FIELDS):
    add_config_arguments(parser, config.DataConfig, fields=fields, config_file=False, default_help="the run's")


def run_train_caption(args):
    from vsa_tf.jobs.captioning import train_captioner

    caption_config = config_from_arguments(args, config.CaptionConfig)
    result = train_captioner(
        caption_config, run_dir=args.out, snippets_path=args.snippets, strategy=args.strategy,
        cnn_from_alignment=args.cnn_from_alignment, fine_tune_cnn=args.fine_tune_cnn,
    )
    print(f"caption run written to {result.run.folder}")
    return 0


def run_caption(args):
    from vsa_tf.files import atomic_write_text
    from vsa_tf.jobs.captioning import caption_images
    from vsa_tf.jobs.proposal_captions import caption_proposals

    if args.max_boxes is not None and not args.proposals:
        raise ValueError("--max-boxes picks among the proposals of --proposals RUN; give --proposals")
    if args.proposals:
        results = caption_proposals(args.run, args.proposals, args.images, beam=args.beam, max_boxes=args.max_boxes)
    else:
        results = caption_images(args.run, args.images, boxes=args.boxes or None, beam=args.beam)
    for result in results:
        where = "" if result["box"] is None else " [" + ", ".join(f"{value:g}" for value in result["box"]) + "]"
        if result.get("proposal_score") is not None:
            where += f" (proposal {result['proposal_score']:.3f})"
        print(f"{result['image']}{where}: {result['caption']}")
    if args.json_path:
        atomic_write_text(args.json_path, json.dumps(results, indent=2) + "\n")
    return 0


def _optional_data_config(args, run_dir, fields=RUN_DATA_FIELDS):
    return run_data_config(args, run_dir, fields)


def run_evaluate_captions(args):
    from vsa_tf.jobs.captioning import evaluate_captions

    report = evaluate_captions(args.run, _optional_data_config(args, args.run), split=args.split, beam=args.beam, json_out=args.json_path)
    print(json.dumps({key: report[key] for key in ("split", "beam", "num_images", "model", "nearest_neighbour", "verbatim_fraction", "distinct_fraction")}, indent=2))
    return 0


def run_evaluate_region_captions(args):
    from vsa_tf.jobs.captioning import evaluate_region_captions

    report = evaluate_region_captions(
        args.run,
        args.truth,
        data_config=_optional_data_config(args, args.run, REGION_RUN_DATA_FIELDS),
        split=args.split,
        beam=args.beam,
        full_frame_run=args.full_frame_run,
        alignment_run=args.alignment_run,
        snippets_path=args.snippets,
        json_out=args.json_path,
    )
    print(json.dumps({key: value for key, value in report.items() if not key.endswith("_examples")}, indent=2))
    return 0
