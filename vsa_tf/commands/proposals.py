"""`vsa-tf train-proposals`, `vsa-tf propose`, `vsa-tf evaluate-proposals`: the region proposal network."""

from vsa_tf import config
from vsa_tf.commands import add_out_argument, boxes_argument, print_json
from vsa_tf.commands.config_arguments import add_config_arguments, config_from_arguments, run_data_config

# Options of the image encoder and the data that region proposals do not read (they learn from --boxes,
# not from another proposals run's boxes).
PROPOSAL_EXCLUDED = (
    "data.proposals", "image.mode", "image.pool_size", "image.pooling", "image.normalization", "data.features", "data.max_words", "data.min_word_count",
)


def register(subparsers):
    train = subparsers.add_parser(
        "train-proposals",
        help="train a class-agnostic region proposal network (the RPN of Faster R-CNN) from a boxes file",
        description="Trains the RPN head on the backbone's feature map from the boxes of --boxes (train split); the run "
        "folder gets config.json, model.weights.h5 (head and backbone), history.csv and proposals_test.json.",
    )
    add_out_argument(train, "run folder to write (an interrupted run resumes)")
    add_config_arguments(train, config.ProposalConfig, exclude=PROPOSAL_EXCLUDED, required=("data.dataset", "data.images", "data.boxes"))
    train.add_argument(
        "--cnn-from-alignment", default=None, metavar="RUN",
        help="pixel-mode alignment run whose trained CNN becomes the backbone (kept fixed unless --no-freeze-backbone)",
    )
    train.set_defaults(handler=run_train_proposals)

    propose = subparsers.add_parser("propose", help="write the proposals of a proposals run for a dataset's images as a boxes JSON")
    propose.add_argument("--run", required=True, help="proposals run folder")
    add_config_arguments(propose, config.DataConfig, fields=("dataset", "images"), config_file=False, default_help="the run's")
    propose.add_argument("--split", nargs="+", default=["train", "val", "test"], choices=("train", "val", "test"),
                         help="splits whose images get proposals (default: all)")
    propose.add_argument("--out", required=True, help="boxes JSON to write ({filename: {boxes, scores}}, best first)")
    propose.add_argument("--max-proposals", type=int, default=None, metavar="K",
                         help="proposals kept per image (default: the run's max_proposals)")
    propose.add_argument("--nms-iou-threshold", type=float, default=None,
                         help="NMS overlap threshold (default: the run's)")
    propose.set_defaults(handler=run_propose)

    parser = subparsers.add_parser(
        "evaluate-proposals",
        help="recall at IoU >= 0.5 of the top K boxes of a boxes file against a truth.json, with baselines",
        description=(
            "A truth box is found at K when one of its image's first K boxes (best first) has IoU >= the "
            "threshold with it. The whole image alone, a fixed grid of 19 boxes and (with --images and OpenCV's "
            "contrib modules: pip install 'vsa_tf[bench]') selective search's first K boxes are scored on the same "
            "images (the truth images the boxes file names, or those of --dataset's --split)."
        ),
    )
    parser.add_argument("--boxes", required=True, type=boxes_argument, help="boxes JSON (filename -> boxes, best first, or boxes + scores)")
    parser.add_argument("--truth", required=True, help="truth.json (synthetic world, or Flickr8k's phrase boxes)")
    parser.add_argument("--recall-at", type=int, nargs="+", default=None, metavar="K", help="K values (default 1 5 10 19 50 100)")
    parser.add_argument("--iou-threshold", type=float, default=0.5, help="least IoU (default 0.5)")
    parser.add_argument("--images", default=None, help="image folder: adds the selective-search baseline (needs OpenCV contrib)")
    parser.add_argument("--dataset", default=None, help="captions file: evaluate the truth's images of its --split, in its order")
    parser.add_argument("--split", nargs="+", default=["val"], choices=("train", "val", "test"), help="splits of --dataset (default val)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N images")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the result here")
    parser.set_defaults(handler=run_evaluate_proposals)


def run_evaluate_proposals(args):
    import sys

    from vsa_tf.evaluation import proposals, selective_search

    if not args.boxes:
        raise ValueError("--boxes none has no boxes to evaluate; give a boxes JSON")
    recall_at = tuple(args.recall_at) if args.recall_at else proposals.RECALL_AT
    image_root, notes = args.images, []
    if image_root is None:
        notes.append("selective-search baseline skipped: no --images folder given")
    elif not selective_search.is_available():
        notes.append(f"selective-search baseline skipped: {selective_search.INSTALL_HINT}")
        image_root = None
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    result = proposals.evaluate_proposals(
        args.boxes, args.truth, recall_at=recall_at, iou_threshold=args.iou_threshold, image_root=image_root,
        dataset=args.dataset, splits=tuple(args.split), limit=args.limit,
    )
    result["boxes"] = args.boxes
    if notes:
        result["notes"] = notes
    print_json(result, args.json_path)
    return 0


def run_train_proposals(args):
    from vsa_tf.jobs.proposals import train_proposals

    result = train_proposals(config_from_arguments(args, config.ProposalConfig), run_dir=args.out, cnn_from_alignment=args.cnn_from_alignment)
    print(f"proposals run written to {result.run.folder}")
    if result.test is not None:
        print_json({"test": result.test})
    return 0


def run_propose(args):
    from vsa_tf.jobs.proposals import propose_boxes

    data_config = run_data_config(args, args.run, ("dataset", "images"))
    propose_boxes(
        args.run, data_config, splits=tuple(args.split), out=args.out, max_proposals=args.max_proposals,
        nms_iou_threshold=args.nms_iou_threshold,
    )
    return 0
