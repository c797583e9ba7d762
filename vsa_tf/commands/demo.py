"""`vsa-tf demo`: the main job on the embedded synthetic world."""

from vsa_tf import config
from vsa_tf.commands.config_arguments import add_config_arguments, config_from_arguments


def register(subparsers):
    parser = subparsers.add_parser(
        "demo", help="run the whole pipeline on the synthetic world and write a report",
        description="Every option is a DemoConfig field; --quick starts from DemoConfig.quick_config() "
        "(a few-minute smoke run, numbers not meaningful) unless --config gives a file.",
    )
    add_config_arguments(parser, config.DemoConfig)
    parser.set_defaults(handler=run)


def run(args):
    from vsa_tf.jobs import demo

    base = config.DemoConfig.quick_config() if args.quick else None
    demo.run_demo(config_from_arguments(args, config.DemoConfig, base=base))
    return 0
