"""`vsa-tf demo`: the main job on the embedded synthetic world (`vsa-tf pipeline` on a world it generates)."""

from vsa_tf import config
from vsa_tf.commands.config_arguments import add_config_arguments, config_from_arguments


def register(subparsers):
    parser = subparsers.add_parser(
        "demo", help="run the whole pipeline on the synthetic world and write a report",
        description="Every option is a DemoConfig field; --quick starts from DemoConfig.quick_config() "
        "(a few-minute smoke run, numbers not meaningful) unless --config gives a file. A rerun into the same "
        "--out skips the finished stages and resumes an interrupted one (vsa-tf pipeline).",
    )
    add_config_arguments(parser, config.DemoConfig)
    parser.set_defaults(handler=run)


def run(args):
    from vsa_tf.jobs import pipeline

    base = config.DemoConfig.quick_config() if args.quick else None
    pipeline.run_demo(config_from_arguments(args, config.DemoConfig, base=base))
    return 0
