"""`vsa-tf train-embedding`, `arithmetic`, `evaluate-arithmetic`, `train-scnlm`, `generate-scnlm`, `evaluate-scnlm`.

The joint embedding and SC-NLM of Kiros et al. 2014; handlers parse and call `vsa_tf.jobs.embedding`.
"""

import json

from vsa_tf import config
from vsa_tf.commands import add_out_argument, add_strategy_argument, print_json
from vsa_tf.commands.config_arguments import add_config_arguments, config_from_arguments


def _add_dataset_location(parser, required=False):
    """`--dataset` and `--images` of a command on a run (default: the run's own)."""
    add_config_arguments(
        parser, config.DataConfig, fields=("dataset", "images"), config_file=False,
        required=("dataset", "images") if required else (), default_help=None if required else "the run's",
    )


def register(subparsers):
    parser = subparsers.add_parser("train-embedding", help="train the joint image-sentence embedding (Kiros et al. 2014)")
    add_out_argument(parser, "run folder to write (an interrupted run resumes)", deprecated_run=True)
    # The job chooses the image side's mode (cached features when --features is given); it takes no normalisation.
    add_config_arguments(
        parser, config.EmbeddingConfig, exclude=("image.mode", "image.normalization"), required=("data.dataset", "data.images")
    )
    add_strategy_argument(parser)
    parser.set_defaults(handler=run_train_embedding)

    parser = subparsers.add_parser("arithmetic", help="nearest images of image - word + word in the joint space")
    parser.add_argument("--run", required=True, help="embedding run folder (linear encoder)")
    _add_dataset_location(parser, required=True)
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
    _add_dataset_location(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.set_defaults(handler=run_evaluate_arithmetic)

    parser = subparsers.add_parser(
        "train-scnlm", help="train the structure-content neural language model",
        description="Trains the SC-NLM of Kiros et al. 2014 on the image vectors of a joint embedding run; "
        "without --dataset it reads the embedding run's data.",
    )
    add_out_argument(parser, "run folder to write (an interrupted run resumes)", deprecated_run=True)
    add_config_arguments(
        parser, config.SCNLMConfig, required=("embedding_run",),
        default_help={"data.image_size": "the embedding run's", "data.dataset": "the embedding run's",
                      "data.images": "the embedding run's"},
    )
    add_strategy_argument(parser)
    parser.set_defaults(handler=run_train_scnlm)

    parser = subparsers.add_parser("generate-scnlm", help="SC-NLM captions of a split ({filename: caption} JSON)")
    parser.add_argument("--run", required=True)
    parser.add_argument("--split", default="test")
    _add_dataset_location(parser)
    parser.add_argument("--sample", action="store_true", help="sample words instead of greedy decoding")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="captions JSON to write")
    parser.set_defaults(handler=run_generate_scnlm)

    parser = subparsers.add_parser(
        "evaluate-scnlm", help="BLEU/METEOR/ROUGE_L/CIDEr of SC-NLM captions (same metrics as evaluate-captions)"
    )
    parser.add_argument("--run", required=True)
    parser.add_argument("--split", default="test", choices=("val", "test"))
    _add_dataset_location(parser)
    parser.add_argument("--sample", action="store_true", help="sample words instead of greedy decoding")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None, help="write the full report here")
    parser.set_defaults(handler=run_evaluate_scnlm)


def run_train_embedding(args):
    from vsa_tf.jobs import embedding

    embedding_config = config_from_arguments(args, config.EmbeddingConfig)
    result = embedding.train_embedding(embedding_config, args.out, verbose=2, strategy=args.strategy)
    print_json({"run": result.run.folder, "test": result.test})
    return 0


def run_arithmetic(args):
    from vsa_tf.jobs import embedding

    data = config_from_arguments(args, config.DataConfig)  # checks that both are given
    result = embedding.run_arithmetic(
        args.run, data.dataset, data.images, args.image, args.minus, args.plus, top=args.top, out=args.out, split=args.split
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
    print_json(result, args.json_path)
    return 0


def run_train_scnlm(args):
    from vsa_tf.jobs import scnlm
    from vsa_tf.jobs.run_folder import read_config_values

    scnlm_config = config_from_arguments(args, config.SCNLMConfig)
    if scnlm_config.data.dataset and args.image_size is None and not args.config:
        # Without --dataset the job reads the embedding run's data; another dataset is seen at the
        # embedding run's image size unless --image-size says otherwise.
        embedding_data = read_config_values(scnlm_config.embedding_run).get("data", {})
        image_size = tuple(embedding_data.get("image_size", scnlm_config.data.image_size))
        scnlm_config = scnlm_config.replace(data=scnlm_config.data.replace(image_size=image_size))
    result = scnlm.train_scnlm(scnlm_config, args.out, verbose=2, strategy=args.strategy)
    print_json({"run": result.run.folder, "final": {key: values[-1] for key, values in result.history.items() if values}})
    return 0


def run_generate_scnlm(args):
    from vsa_tf.jobs import scnlm

    captions = scnlm.generate_scnlm_captions(
        args.run, split=args.split, greedy=not args.sample, seed=args.seed, out=args.out,
        dataset_path=args.dataset, images=args.images,
    )
    for filename, caption in list(captions.items())[:10]:
        print(f"{filename}: {caption}")
    print(f"{len(captions)} captions" + (f" written to {args.out}" if args.out else ""))
    return 0


def run_evaluate_scnlm(args):
    from vsa_tf.jobs import scnlm

    report = scnlm.evaluate_scnlm_captions(
        args.run, split=args.split, greedy=not args.sample, seed=args.seed, json_out=args.json_path,
        dataset_path=args.dataset, images=args.images,
    )
    print(json.dumps({key: value for key, value in report.items() if key != "examples"}, indent=2))
    return 0
