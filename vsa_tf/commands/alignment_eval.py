"""`vsa-tf evaluate-alignment`: accuracy of MRF snippets against the synthetic world's truth.json."""

from vsa_tf.commands import print_json


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate-alignment",
        help="phrase/word alignment accuracy of a snippets file against a synthetic truth.json",
        description=(
            "A ground-truth phrase is correct when its head (last) word lies in a snippet whose box has "
            "IoU >= the threshold with the object's box; word accuracy applies the test to every phrase word."
        ),
    )
    parser.add_argument("--snippets", required=True, help="snippets JSON written by `vsa-tf align`")
    parser.add_argument("--truth", required=True, help="truth.json of the synthetic world")
    parser.add_argument("--iou-threshold", type=float, default=0.5, help="minimum IoU (default 0.5)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the result here")
    parser.set_defaults(handler=run_evaluate_alignment)


def run_evaluate_alignment(args):
    from vsa_tf.align.snippets import read_snippets
    from vsa_tf.evaluation.alignment import evaluate_alignment, read_truth

    result = evaluate_alignment(read_snippets(args.snippets), read_truth(args.truth), args.iou_threshold)
    result["snippets"] = args.snippets
    print_json(result, args.json_path)
    return 0
