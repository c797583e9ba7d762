"""`vsa-tf evaluate-proposals`: recall of a boxes file's top-K boxes against a truth.json, beside two baselines."""

from vsa_tf.commands import boxes_argument, print_json


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate-proposals",
        help="recall at IoU >= 0.5 of the top K boxes of a boxes file against a truth.json, with baselines",
        description=(
            "A truth box is found at K when one of its image's first K boxes (best first) has IoU >= the "
            "threshold with it. The whole image alone and a fixed grid of 19 boxes are scored on the same images "
            "(the truth images the boxes file names)."
        ),
    )
    parser.add_argument("--boxes", required=True, type=boxes_argument, help="boxes JSON (filename -> boxes, best first, or boxes + scores)")
    parser.add_argument("--truth", required=True, help="truth.json (synthetic world, or Flickr8k's phrase boxes)")
    parser.add_argument("--recall-at", type=int, nargs="+", default=None, metavar="K", help="K values (default 1 5 10 19 50 100)")
    parser.add_argument("--iou-threshold", type=float, default=0.5, help="least IoU (default 0.5)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the result here")
    parser.set_defaults(handler=run_evaluate_proposals)


def run_evaluate_proposals(args):
    from vsa_tf.evaluation import proposals

    if not args.boxes:
        raise ValueError("--boxes none has no boxes to evaluate; give a boxes JSON")
    recall_at = tuple(args.recall_at) if args.recall_at else proposals.RECALL_AT
    result = proposals.evaluate_proposals(args.boxes, args.truth, recall_at=recall_at, iou_threshold=args.iou_threshold)
    result["boxes"] = args.boxes
    print_json(result, args.json_path)
    return 0
