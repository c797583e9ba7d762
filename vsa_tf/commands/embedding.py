"""`vsa-tf train-embedding`, `arithmetic`, `evaluate-arithmetic`, `train-scnlm`, `generate-scnlm`, `evaluate-scnlm`.

The joint embedding and SC-NLM of Kiros et al. 2014; handlers parse and call `vsa_tf.jobs.embedding`.
"""

import json

from vsa_tf.commands import BOXES_HELP, add_split_arguments, add_strategy_argument, boxes_argument, split_options


def _add_data_arguments(parser, required=True, image_size=(128, 128)):
    parser.add_argument("--dataset", required=required, help="captions file (Karpathy JSON, COCO JSON or Flickr8k txt)")
    parser.add_argument("--images", required=required, help="image root folder")
    parser.add_argument("--boxes", type=boxes_argument, default=None, help="optional " + BOXES_HELP + " (pixel mode)")
    parser.add_argument("--no-restval-to-train", action="store_true", help="keep Karpathy's restval split apart")
    add_split_arguments(parser)
    parser.add_argument("--features", default=None, help="optional cached region features folder")
    parser.add_argument("--max-words", type=int, default=16)
    parser.add_argument("--min-word-count", type=int, default=5)
    parser.add_argument(
        "--image-size", type=int, nargs=2, default=image_size, metavar=("HEIGHT", "WIDTH"),
        help="resize images to this size" + ("" if image_size else " (default: the embedding run's)"),
    )


def _data_config(args):
    from vsa_tf.config import DataConfig

    return DataConfig(
        dataset=args.dataset or "",
        images=args.images or "",
        boxes=args.boxes or None,
        features=args.features,
        restval_to_train=not args.no_restval_to_train,
        max_words=args.max_words,
        min_word_count=args.min_word_count,
        image_size=tuple(args.image_size),
        **split_options(args),
    )


def _print(result, json_path=None):
    from vsa_tf.config import atomic_write_text

    text = json.dumps(result, indent=2)
    if json_path:
        atomic_write_text(json_path, text + "\n")
    print(text)


def register(subparsers):
    parser = subparsers.add_parser("train-embedding", help="train the joint image-sentence embedding (Kiros et al. 2014)")
    _add_data_arguments(parser)
    parser.add_argument("--run", required=True, help="run folder to write")
    parser.add_argument("--encoder", choices=("lstm", "linear"), default="lstm")
    parser.add_argument("--embedding-dim", type=int, default=256)
    parser.add_argument("--word-dim", type=int, default=128)
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument("--backbone", default="simple")
    parser.add_argument("--backbone-weights", default=None)
    parser.add_argument("--word-vectors", default=None, help="optional pretrained word vectors file (LSTM encoder)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    add_strategy_argument(parser)
    parser.set_defaults(handler=run_train_embedding)

    parser = subparsers.add_parser("arithmetic", help="nearest images of image - word + word in the joint space")
    parser.add_argument("--run", required=True, help="embedding run folder (linear encoder)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--image", required=True, help="query image filename (as in the dataset)")
    parser.add_argument("--minus", nargs="*", default=[], help="words to subtract")
    parser.add_argument("--plus", nargs="*", default=[], help="words to add")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--split", default="test", help="split whose images are searched")
    parser.add_argument("--out", default=None, help="contact sheet PNG")
    parser.set_defaults(handler=run_arithmetic)

    parser = subparsers.add_parser("evaluate-arithmetic", help="precision@k of attribute swaps on the synthetic world")
    parser.add_argument("--run", required=True)
    parser.add_argument("--truth", required=True, help="truth.json of the synthetic world")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--images", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.set_defaults(handler=run_evaluate_arithmetic)

    parser = subparsers.add_parser("train-scnlm", help="train the structure-content neural language model")
    _add_data_arguments(parser, required=False, image_size=None)
    parser.add_argument("--run", required=True, help="run folder to write")
    parser.add_argument("--embedding-run", required=True, help="joint embedding run giving the content vectors")
    parser.add_argument("--truth", default=None, help="synthetic truth.json with POS tags")
    parser.add_argument("--tagger", choices=("truth", "lexicon"), default="truth")
    parser.add_argument("--context-size", type=int, default=5)
    parser.add_argument("--structure-size", type=int, default=5)
    parser.add_argument("--word-dim", type=int, default=128)
    parser.add_argument("--tag-dim", type=int, default=32)
    parser.add_argument("--factor-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    add_strategy_argument(parser)
    parser.set_defaults(handler=run_train_scnlm)

    parser = subparsers.add_parser("generate-scnlm", help="SC-NLM captions of a split ({filename: caption} JSON)")
    parser.add_argument("--run", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--images", default=None)
    parser.add_argument("--sample", action="store_true", help="sample words instead of greedy decoding")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="captions JSON to write")
    parser.set_defaults(handler=run_generate_scnlm)

    parser = subparsers.add_parser(
        "evaluate-scnlm", help="BLEU/METEOR/ROUGE_L/CIDEr of SC-NLM captions (same metrics as evaluate-captions)"
    )
    parser.add_argument("--run", required=True)
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--images", default=None)
    parser.add_argument("--sample", action="store_true", help="sample words instead of greedy decoding")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None, help="write the full report here")
    parser.set_defaults(handler=run_evaluate_scnlm)


def run_train_embedding(args):
    from vsa_tf.config import EmbeddingConfig, ImageEncoderConfig
    from vsa_tf.jobs import embedding

    config = EmbeddingConfig(
        data=_data_config(args), encoder=args.encoder, embedding_dim=args.embedding_dim, word_dim=args.word_dim,
        margin=args.margin, image=ImageEncoderConfig(backbone=args.backbone, weights=args.backbone_weights),
        word_vectors=args.word_vectors, batch_size=args.batch_size, epochs=args.epochs,
        learning_rate=args.learning_rate, seed=args.seed,
    )
    summary = embedding.train_embedding(config, args.run, verbose=2, strategy=args.strategy)
    _print({"run": args.run, "test": summary.get("test")})
    return 0


def run_arithmetic(args):
    from vsa_tf.jobs import embedding

    result = embedding.run_arithmetic(
        args.run, args.dataset, args.images, args.image, args.minus, args.plus, top=args.top, out=args.out, split=args.split
    )
    print(f"{args.image} - {' - '.join(args.minus) or '0'} + {' + '.join(args.plus) or '0'}:")
    for rank, item in enumerate(result["neighbours"], 1):
        print(f"  {rank}. {item['filename']}  {item['score']:.4f}")
    if result.get("sheet"):
        print(f"contact sheet: {result['sheet']}")
    return 0


def run_evaluate_arithmetic(args):
    from vsa_tf.jobs import embedding

    result = embedding.evaluate_arithmetic(args.run, args.truth, args.dataset, args.images, split=args.split, top=args.top)
    _print(result, args.json_path)
    return 0


def run_train_scnlm(args):
    from vsa_tf.config import DataConfig, SCNLMConfig
    from vsa_tf.jobs import embedding

    if args.dataset and args.image_size is None:
        from vsa_tf.jobs.runs import read_run_config

        embedding_data = read_run_config(args.embedding_run).get("data", {})
        args.image_size = embedding_data.get("image_size", DataConfig().image_size)
    data = _data_config(args) if args.dataset else DataConfig()
    config = SCNLMConfig(
        data=data, embedding_run=args.embedding_run, context_size=args.context_size,
        structure_size=args.structure_size, word_dim=args.word_dim, tag_dim=args.tag_dim,
        factor_dim=args.factor_dim, tagger=args.tagger, truth=args.truth, batch_size=args.batch_size,
        epochs=args.epochs, learning_rate=args.learning_rate, seed=args.seed,
    )
    summary = embedding.train_scnlm(config, args.run, verbose=2, strategy=args.strategy)
    _print({"run": args.run, "final": {key: values[-1] for key, values in summary["history"].items() if values}})
    return 0


def run_generate_scnlm(args):
    from vsa_tf.jobs import embedding

    captions = embedding.generate_scnlm_captions(
        args.run, split=args.split, greedy=not args.sample, seed=args.seed, out=args.out,
        dataset_path=args.dataset, images=args.images,
    )
    for filename, caption in list(captions.items())[:10]:
        print(f"{filename}: {caption}")
    print(f"{len(captions)} captions" + (f" written to {args.out}" if args.out else ""))
    return 0


def run_evaluate_scnlm(args):
    from vsa_tf.jobs import embedding

    report = embedding.evaluate_scnlm_captions(
        args.run, split=args.split, greedy=not args.sample, seed=args.seed, json_out=args.json_path,
        dataset_path=args.dataset, images=args.images,
    )
    print(json.dumps({key: value for key, value in report.items() if key != "examples"}, indent=2))
    return 0
