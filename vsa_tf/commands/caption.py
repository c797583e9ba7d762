"""`vsa-tf train-caption`, `vsa-tf caption`, `vsa-tf evaluate-captions`, `vsa-tf evaluate-region-captions`."""

import json

from vsa_tf.commands import BOXES_HELP, add_split_arguments, add_strategy_argument, boxes_argument, split_options


def _add_data_arguments(parser, required=True):
    parser.add_argument("--dataset", required=required, help="captions file (Karpathy JSON, COCO captions JSON, Flickr8k tokens)")
    parser.add_argument("--images", required=required, help="image root folder")
    parser.add_argument("--features", default=None, help="cached whole-image features folder (instead of pixels)")
    parser.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("HEIGHT", "WIDTH"), help="resize images to this size")
    parser.add_argument("--min-word-count", type=int, default=None, help="rarer train words map to the unknown token")
    parser.add_argument(
        "--no-restval-to-train", action="store_true", default=None,
        help="keep Karpathy's restval split apart (default: the config's or the run's)",
    )
    add_split_arguments(parser, of_run=not required)


def _data_config(args, base=None):
    """`base` (a config file's or a run's DataConfig) with the data arguments given; another --dataset does not
    keep base's split options (`vsa_tf.jobs.runs.with_dataset`)."""
    from vsa_tf.config import DataConfig
    from vsa_tf.jobs.runs import with_dataset

    base = base or DataConfig()
    changes = {"images": args.images} if args.images is not None else {}
    if args.features is not None:
        changes["features"] = args.features
    if args.image_size is not None:
        changes["image_size"] = tuple(args.image_size)
    if args.min_word_count is not None:
        changes["min_word_count"] = args.min_word_count
    if args.no_restval_to_train:
        changes["restval_to_train"] = False
    if getattr(args, "boxes", None) is not None:
        changes["boxes"] = args.boxes or None  # --boxes none clears the config's boxes
    return with_dataset(base, args.dataset, **changes, **split_options(args))


def register(subparsers):
    train = subparsers.add_parser(
        "train-caption",
        help="train the multimodal RNN captioner on whole images, or on (region, snippet) pairs",
        description="Trains the multimodal RNN of Karpathy & Fei-Fei 2015 (eqs. 13-15); the run folder gets config.json, "
        "vocabulary.txt, model.weights.h5 (best epoch), backup/ and history.csv.",
    )
    _add_data_arguments(train)
    train.add_argument("--out", required=True, help="run folder (an interrupted run resumes)")
    train.add_argument("--boxes", type=boxes_argument, default=None, help=BOXES_HELP + " (kept in the run's data config)")
    train.add_argument("--snippets", default=None, help="snippets JSON from `vsa-tf align`: train region captions")
    train.add_argument("--config", default=None, help="a CaptionConfig JSON file to start from")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--hidden-dim", type=int, default=None)
    train.add_argument("--cell", choices=("rnn", "lstm"), default=None)
    train.add_argument("--learning-rate", type=float, default=None)
    train.add_argument("--backbone", default=None, help="backbone of the image side in pixel mode")
    train.add_argument(
        "--pooling", choices=("flatten", "average"), default=None,
        help="RoIAlign bins of the image or box: concatenated (keeps the layout) or averaged (default: the config's)",
    )
    train.add_argument(
        "--cnn-from-alignment", default=None, metavar="RUN",
        help="pixel-mode alignment run whose trained CNN becomes the image side, kept fixed (see --fine-tune-cnn)",
    )
    train.add_argument(
        "--fine-tune-cnn", action="store_true",
        help="with --cnn-from-alignment: train that CNN further with the captioner instead of keeping it fixed",
    )
    train.add_argument(
        "--image-normalization", choices=("none", "layer"), default=None,
        help="LayerNormalization of CNN(I) before W_hi (default: the config's)",
    )
    train.add_argument("--dropout", type=float, default=None)
    add_strategy_argument(train)
    train.set_defaults(handler=run_train_caption)

    caption = subparsers.add_parser("caption", help="print captions for image files (whole images, or each given box)")
    caption.add_argument("--run", required=True, help="caption run folder")
    caption.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    caption.add_argument("--beam", type=int, default=None, help="beam size (default: the run's, 7; 1 = greedy)")
    caption.add_argument(
        "--boxes", type=boxes_argument, default=None,
        help="boxes JSON keyed by the image path, its trailing components (sub/a.jpg) or its basename; an image with no key is captioned whole, with a warning; 'none' = whole images only",
    )
    caption.add_argument("--json", dest="json_path", default=None, help="also write the captions here")
    caption.set_defaults(handler=run_caption)

    evaluate = subparsers.add_parser(
        "evaluate-captions",
        help="BLEU/METEOR/ROUGE_L/CIDEr of a caption run, the nearest-neighbour baseline, verbatim fraction (Table 2)",
    )
    evaluate.add_argument("--run", required=True, help="caption run folder")
    _add_data_arguments(evaluate, required=False)
    evaluate.add_argument("--split", default="test", choices=("val", "test"))
    evaluate.add_argument("--beam", type=int, default=None, help="beam size (default: the run's)")
    evaluate.add_argument("--json", dest="json_path", default=None, help="write the report here")
    evaluate.set_defaults(handler=run_evaluate_captions)

    regions = subparsers.add_parser(
        "evaluate-region-captions",
        help="region captions against the synthetic truth's object phrases: region vs full-frame model vs ranking (Table 3)",
    )
    regions.add_argument("--run", required=True, help="region caption run folder (trained with --snippets)")
    regions.add_argument("--truth", required=True, help="truth.json of the synthetic world")
    regions.add_argument("--full-frame-run", default=None, help="full-frame caption run fed the same regions")
    regions.add_argument("--alignment-run", default=None, help="alignment run for the ranking baseline")
    regions.add_argument("--snippets", default=None, help="snippets JSON the ranking baseline retrieves from")
    _add_data_arguments(regions, required=False)
    regions.add_argument("--split", default="test", choices=("val", "test"))
    regions.add_argument("--beam", type=int, default=None)
    regions.add_argument("--json", dest="json_path", default=None, help="write the report here")
    regions.set_defaults(handler=run_evaluate_region_captions)


def run_train_caption(args):
    from vsa_tf.config import CaptionConfig, load_config
    from vsa_tf.jobs.captioning import train_captioner

    config = load_config(CaptionConfig, args.config) if args.config else CaptionConfig()
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "hidden_dim": args.hidden_dim,
        "cell": args.cell,
        "learning_rate": args.learning_rate,
        "dropout": args.dropout,
    }
    image_overrides = {"backbone": args.backbone, "pooling": args.pooling, "normalization": args.image_normalization}
    config = config.replace(
        image=config.image.replace(**{key: value for key, value in image_overrides.items() if value is not None}),
        **{key: value for key, value in overrides.items() if value is not None},
    )
    run = train_captioner(
        config, _data_config(args, config.data), args.out, snippets_path=args.snippets, strategy=args.strategy,
        cnn_from_alignment=args.cnn_from_alignment, fine_tune_cnn=args.fine_tune_cnn,
    )
    print(f"caption run written to {run.run_dir}")
    return 0


def run_caption(args):
    from vsa_tf.config import atomic_write_text
    from vsa_tf.jobs.captioning import caption_images

    results = caption_images(args.run, args.images, boxes=args.boxes or None, beam=args.beam)
    for result in results:
        where = "" if result["box"] is None else " [" + ", ".join(f"{value:g}" for value in result["box"]) + "]"
        print(f"{result['image']}{where}: {result['caption']}")
    if args.json_path:
        atomic_write_text(args.json_path, json.dumps(results, indent=2) + "\n")
    return 0


def _optional_data_config(args, run_dir):
    if args.dataset is None and args.images is None:
        if not args.no_restval_to_train and not split_options(args):
            return None  # the run's own data
    elif args.dataset is None or args.images is None:
        raise ValueError("give both --dataset and --images, or neither (to use the run's own)")
    from vsa_tf.jobs.runs import read_run_config
    from vsa_tf.config import DataConfig

    base = DataConfig.from_dict(read_run_config(run_dir).get("data", {}))
    return _data_config(args, base)


def run_evaluate_captions(args):
    from vsa_tf.jobs.captioning import evaluate_captions

    report = evaluate_captions(args.run, _optional_data_config(args, args.run), split=args.split, beam=args.beam, json_out=args.json_path)
    print(json.dumps({key: report[key] for key in ("split", "beam", "num_images", "model", "nearest_neighbour", "verbatim_fraction")}, indent=2))
    return 0


def run_evaluate_region_captions(args):
    from vsa_tf.jobs.captioning import evaluate_region_captions

    report = evaluate_region_captions(
        args.run,
        args.truth,
        data_config=_optional_data_config(args, args.run),
        split=args.split,
        beam=args.beam,
        full_frame_run=args.full_frame_run,
        alignment_run=args.alignment_run,
        snippets_path=args.snippets,
        json_out=args.json_path,
    )
    print(json.dumps({key: value for key, value in report.items() if not key.endswith("_examples")}, indent=2))
    return 0
