"""`vsa-tf train-align`, `evaluate-retrieval`, `align`, `plot-alignment`: the alignment model's commands.

Handlers only parse arguments and call `vsa_tf.jobs.alignment`.
"""

import json

from vsa_tf.commands import BOXES_HELP, add_split_arguments, add_strategy_argument, boxes_argument, split_options


def _add_data_arguments(parser, required=True):
    parser.add_argument("--dataset", required=required, default=None, help="captions file (Karpathy JSON, COCO JSON or Flickr8k txt)")
    parser.add_argument("--images", required=required, default=None, help="image root folder")
    parser.add_argument(
        "--boxes", type=boxes_argument, default=None,
        help=BOXES_HELP + ("" if required else " (default: the run's)"),
    )
    parser.add_argument("--features", default=None, help="cached region features folder (with --feature-mode cached)")
    if required:  # evaluation takes the run's own restval setting (jobs.alignment keeps the run's DataConfig)
        parser.add_argument("--no-restval-to-train", action="store_true", help="keep Karpathy's restval split apart")
    add_split_arguments(parser, of_run=not required)


def _data_config(args, for_training=True):
    """A DataConfig from the arguments (for a run that exists, only the data locations and split options are taken)."""
    from vsa_tf.config import DataConfig

    values = {
        "dataset": args.dataset or "",
        "images": args.images or "",
        "boxes": args.boxes,
        "features": args.features,
        "restval_to_train": not getattr(args, "no_restval_to_train", False),
        **split_options(args),
    }
    if for_training:
        values.update(
            boxes=args.boxes or None,
            image_size=tuple(args.image_size),
            max_boxes=args.max_boxes,
            max_words=args.max_words,
            min_word_count=args.min_word_count,
        )
    return DataConfig(**values)


def register(subparsers):
    parser = subparsers.add_parser("train-align", help="train the alignment model (Karpathy & Fei-Fei 2015, section 3.1)")
    _add_data_arguments(parser)
    parser.add_argument("--out", required=True, help="run folder to write")
    parser.add_argument("--image-size", type=int, nargs=2, default=(128, 128), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--max-boxes", type=int, default=19)
    parser.add_argument("--max-words", type=int, default=16)
    parser.add_argument("--min-word-count", type=int, default=5)
    parser.add_argument("--feature-mode", choices=("pixels", "cached"), default="pixels")
    parser.add_argument(
        "--feature-normalization", choices=("none", "l2"), default="none",
        help="cached mode: divide each region feature by its L2 norm first (use l2 with pretrained CNN features)",
    )
    parser.add_argument("--region-dim", type=int, default=256, help="h, the multimodal space size (paper: 1000)")
    parser.add_argument("--embedding-dim", type=int, default=300)
    parser.add_argument("--hidden-dim", type=int, default=300)
    parser.add_argument("--sentence-encoder", choices=("brnn", "bag_of_words"), default="brnn")
    parser.add_argument("--score", choices=("max", "defrag"), default="max")
    parser.add_argument("--backbone", default="simple", help="simple, vgg16, resnet50, mobilenet_v2, efficientnet_b0, efficientnet_lite_b0")
    parser.add_argument("--backbone-weights", default=None, help="local weights file of the backbone (nothing is downloaded)")
    parser.add_argument("--freeze-backbone", action="store_true")
    parser.add_argument(
        "--pooling", choices=("flatten", "average"), default="flatten",
        help="RoIAlign bins of a region: concatenated (keeps its shape) or averaged",
    )
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--hardest-negative", action="store_true", help="VSE++ hardest negative after --warmup-epochs")
    parser.add_argument("--warmup-epochs", type=int, default=0)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="sgd (the paper) or adam (AdamW with --weight-decay)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="1e-4 suits SGD on the summed loss; 2e-4 suits Adam")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--clip-value", type=float, default=5.0)
    parser.add_argument("--dropout", type=float, default=0.25)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--word-vectors", default=None, help="pretrained word vectors file (word2vec / GloVe)")
    parser.add_argument("--freeze-word-vectors", action="store_true")
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    add_strategy_argument(parser)
    parser.set_defaults(handler=run_train_align)

    parser = subparsers.add_parser("evaluate-retrieval", help="image annotation / search R@K of a run on a split (Table 1)")
    parser.add_argument("--run", required=True, help="alignment or embedding run folder")
    _add_data_arguments(parser, required=False)
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", dest="json_path", default=None, help="write the metrics here")
    parser.set_defaults(handler=run_evaluate_retrieval)

    parser = subparsers.add_parser("align", help="MRF-align a split's sentences to regions and write snippets JSON")
    parser.add_argument("--run", required=True, help="alignment run folder")
    _add_data_arguments(parser, required=False)
    parser.add_argument("--split", default="test")
    parser.add_argument("--beta", type=float, default=1.0, help="MRF reward for neighbouring words sharing a region")
    parser.add_argument("--out", required=True, help="snippets JSON to write")
    parser.set_defaults(handler=run_align)

    parser = subparsers.add_parser("plot-alignment", help="draw one sentence's word-region alignment (Figure 5)")
    parser.add_argument("--run", required=True, help="alignment run folder")
    _add_data_arguments(parser, required=False)
    parser.add_argument("--split", default="test")
    parser.add_argument("--image", default=None, help="image filename (default: the split's first image)")
    parser.add_argument("--sentence", type=int, default=0, help="sentence index within the image")
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--out", required=True, help="figure file (.png, .pdf, .svg)")
    parser.set_defaults(handler=run_plot_alignment)


def run_train_align(args):
    from vsa_tf.config import AlignmentConfig, ImageEncoderConfig
    from vsa_tf.jobs import alignment

    data_config = _data_config(args)
    config = AlignmentConfig(
        data=data_config,
        image=ImageEncoderConfig(
            mode=args.feature_mode, normalization=args.feature_normalization, backbone=args.backbone,
            weights=args.backbone_weights, frozen=args.freeze_backbone, pooling=args.pooling,
        ),
        region_dim=args.region_dim,
        embedding_dim=args.embedding_dim,
        hidden_dim=args.hidden_dim,
        sentence_encoder=args.sentence_encoder,
        score=args.score,
        margin=args.margin,
        hardest_negative=args.hardest_negative,
        warmup_epochs=args.warmup_epochs,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        momentum=args.momentum,
        clip_value=args.clip_value,
        dropout=args.dropout,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        epochs=args.epochs,
        word_vectors=args.word_vectors,
        freeze_word_vectors=args.freeze_word_vectors,
        jit_compile=args.jit_compile,
        seed=args.seed,
    )
    summary = alignment.train_alignment(config, data_config, args.out, strategy=args.strategy)
    print(json.dumps({"run": args.out, "test": summary.get("test")}, indent=2))
    return 0


def run_evaluate_retrieval(args):
    from vsa_tf.jobs import alignment

    result = alignment.evaluate_retrieval(args.run, _data_config(args, for_training=False), args.split, json_out=args.json_path)
    print(json.dumps(result, indent=2))
    return 0


def run_align(args):
    from vsa_tf.jobs import alignment

    snippets = alignment.align_split(args.run, _data_config(args, for_training=False), args.split, args.beta, out=args.out)
    print(f"wrote {len(snippets)} snippets to {args.out}")
    return 0


def run_plot_alignment(args):
    from vsa_tf.jobs import alignment

    path = alignment.plot_sentence_alignment(
        args.run, _data_config(args, for_training=False), args.split, filename=args.image, sentence=args.sentence,
        beta=args.beta, out=args.out,
    )
    print(f"wrote {path}")
    return 0
