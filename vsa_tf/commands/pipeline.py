"""`vsa-tf pipeline`: the main job on any dataset, stage by stage, resumable (`vsa_tf.jobs.pipeline`)."""

import os

from vsa_tf import config
from vsa_tf.commands.config_arguments import add_config_arguments, config_from_arguments

# `vsa_tf.jobs.pipeline.STAGE_NAMES` (that module imports TensorFlow); tests/commands/pipeline_test.py keeps them equal.
STAGE_NAMES = (
    "world", "validate", "regions", "features", "alignment", "retrieval", "snippets", "captioners", "captions",
    "proposals", "embedding", "export", "report",
)


def register(subparsers):
    parser = subparsers.add_parser(
        "pipeline", help="the whole pipeline on a dataset (validate -> regions -> alignment -> captions -> export -> report)",
        description="Runs every stage into one --out folder (stages/NAME.json marks a finished stage): a rerun of "
        "the same command skips the finished stages and resumes an interrupted one; a rerun with other settings "
        "is refused. Regions: --boxes FILE, --proposals RUN, or --train-proposals (a proposal network trained "
        "on --boxes). Every option is a PipelineConfig field. With --backbone-weights (cached features) images "
        f"are resized to {config.CACHED_FEATURE_IMAGE_SIZE[0]} x {config.CACHED_FEATURE_IMAGE_SIZE[1]} unless --image-size says otherwise.",
    )
    parser.add_argument("--out", required=True, help="the pipeline's folder (run folders, figures, stage markers, report)")
    parser.add_argument(
        "--stages", nargs="+", choices=STAGE_NAMES, default=None, metavar="STAGE",
        help="run only these stages, done or not (e.g. --stages report); stages: " + ", ".join(STAGE_NAMES),
    )
    add_config_arguments(parser, config.PipelineConfig, exclude=("data.features",))
    parser.set_defaults(handler=run)


def pipeline_config_from_arguments(args):
    """The PipelineConfig of parsed arguments; cached features get `CACHED_FEATURE_IMAGE_SIZE` unless an image size was chosen."""
    from vsa_tf.jobs.pipeline import CONFIG_FILE

    base = config.PipelineConfig(**config.QUICK_SETTINGS) if args.quick else None
    pipeline_config = config_from_arguments(args, config.PipelineConfig, base=base)
    if args.image_size is None and not args.config:
        pipeline_config = pipeline_config.with_cached_image_size(os.path.join(args.out, CONFIG_FILE))
    return pipeline_config


def run(args):
    from vsa_tf.jobs import pipeline

    pipeline_config = pipeline_config_from_arguments(args)
    summary = pipeline.run_pipeline(pipeline_config, args.out, stages=args.stages)
    if summary.get("report"):
        print(f"\nReport: {summary['report']}", flush=True)
    return 0
