"""`vsa-tf train-align`, `evaluate-retrieval`, `align`, `plot-alignment`: the alignment model's commands.

Handlers only parse arguments and call `vsa_tf.jobs.alignment`.
"""

import json

from vsa_tf import config
from vsa_tf.commands import add_out_argument, add_strategy_argument
from vsa_tf.commands.config_arguments import add_config_arguments, config_from_arguments

# The data options of a command on an existing run: where its dataset lives (jobs.alignment keeps the
# run's other data settings, e.g. the image size and restval). `--proposals RUN`: the boxes of a proposals
# run for the split, made (or reused) in the temp folder (`vsa_tf.jobs.proposal_boxes.with_proposal_boxes`).
RUN_DATA_FIELDS = ("dataset", "images", "boxes", "proposals", "features", "split_of_file", "split_files")


def _add_run_data_arguments(parser):
    add_config_arguments(parser, config.DataConfig, fields=RUN_DATA_FIELDS, config_file=False, default_help="the run's")


def _data_config(args, for_training=True):
    """The DataConfig of the arguments; for a run that exists, only the data locations and split options
    are given (`--boxes none` = no boxes, not the run's)."""
    if for_training:
        return config_from_arguments(args, config.AlignmentConfig).data
    return config_from_arguments(args, config.DataConfig, for_run=True)


def register(subparsers):
    parser = subparsers.add_parser("train-align", help="train the alignment model (Karpathy & Fei-Fei 2015, section 3.1)")
    add_out_argument(parser, "run folder to write (an interrupted run resumes)")
    add_config_arguments(parser, config.AlignmentConfig, required=("data.dataset", "data.images"))
    add_strategy_argument(parser)
    parser.set_defaults(handler=run_train_align)

    parser = subparsers.add_parser("evaluate-retrieval", help="image annotation / search R@K of a run on a split (Table 1)")
    parser.add_argument("--run", required=True, help="alignment or embedding run folder")
    _add_run_data_arguments(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", dest="json_path", default=None, help="write the metrics here")
    parser.set_defaults(handler=run_evaluate_retrieval)

    parser = subparsers.add_parser("align", help="MRF-align a split's sentences to regions and write snippets JSON")
    parser.add_argument("--run", required=True, help="alignment run folder")
    _add_run_data_arguments(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--beta", type=float, default=1.0, help="MRF reward for neighbouring words sharing a region")
    parser.add_argument("--out", required=True, help="snippets JSON to write")
    parser.set_defaults(handler=run_align)

    parser = subparsers.add_parser("plot-alignment", help="draw one sentence's word-region alignment (Figure 5)")
    parser.add_argument("--run", required=True, help="alignment run folder")
    _add_run_data_arguments(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--image", default=None, help="image filename (default: the split's first image)")
    parser.add_argument("--sentence", type=int, default=0, help="sentence index within the image")
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--out", required=True, help="figure file (.png, .pdf, .svg)")
    parser.set_defaults(handler=run_plot_alignment)


def run_train_align(args):
    from vsa_tf.jobs import alignment

    alignment_config = config_from_arguments(args, config.AlignmentConfig)
    result = alignment.train_alignment(alignment_config, run_dir=args.out, strategy=args.strategy)
    print(json.dumps({"run": result.run.folder, "test": result.test}, indent=2))
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
