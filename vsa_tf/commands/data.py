"""`vsa-tf synth` (write the synthetic world), `vsa-tf validate` (check a dataset, print a summary) and
`vsa-tf convert-dataset` (any captions file -> Karpathy split JSON)."""

import json
import sys

from vsa_tf import config
from vsa_tf.commands.config_arguments import add_config_arguments, config_from_arguments

# How a captions file becomes a dataset (`DataConfig` fields).
DATASET_FORMAT_FIELDS = ("restval_to_train", "split_of_file", "split_files")


def register(subparsers):
    synth = subparsers.add_parser(
        "synth",
        help="write the synthetic world: dataset.json, images/, boxes.json, truth.json",
        description=(
            "Generates the embedded synthetic dataset (Karpathy-format JSON, JPEG images, detector-like "
            "boxes, truth)."
        ),
    )
    synth.add_argument("--out", required=True, help="output folder (must be new or empty unless --overwrite)")
    synth.add_argument("--images", type=int, default=1000, help="number of images (default 1000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    synth.set_defaults(handler=run_synth)

    validate = subparsers.add_parser(
        "validate",
        help="check a dataset against its images and boxes and print a summary",
        description=(
            "Reads a Karpathy split JSON, COCO captions JSON or Flickr8k token file, checks every image "
            "(present, decodable, inside the image root), caption and box, and prints images / sentences "
            "per split, the vocabulary size and boxes per image. Exits 1 listing every problem as 'file: problem'."
        ),
    )
    add_config_arguments(
        validate, config.DataConfig, fields=("dataset", "images", "boxes", "min_word_count") + DATASET_FORMAT_FIELDS,
        required=("dataset", "images"), config_file=False,
    )
    validate.add_argument("--full-decode", action="store_true", help="decode every image fully (slower)")
    validate.add_argument("--json", action="store_true", help="print the summary as JSON")
    validate.set_defaults(handler=run_validate)

    convert = subparsers.add_parser(
        "convert-dataset",
        help="write any captions file as Karpathy split JSON (fixing a COCO file's split or a token file's split lists)",
        description=(
            "Reads a COCO captions JSON (its split from the file name or --split-of-file) or a Flickr token file "
            "(with --split-files) and writes Karpathy split JSON (raw captions and tokens), which every training "
            "and evaluation command reads with no further options."
        ),
    )
    add_config_arguments(convert, config.DataConfig, fields=("dataset",) + DATASET_FORMAT_FIELDS, required=("dataset",), config_file=False)
    convert.add_argument("--out", required=True, help="Karpathy split JSON to write")
    convert.set_defaults(handler=run_convert_dataset)


def _read_dataset(data):
    from vsa_tf.data import readers

    return readers.read_dataset(
        data.dataset, restval_to_train=data.restval_to_train, split_files=data.split_files, split_of_file=data.split_of_file
    )


def run_synth(args):
    from vsa_tf.data import synthetic

    summary = synthetic.generate_world(args.out, num_images=args.images, seed=args.seed, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def format_summary(summary):
    """The validate summary as a few readable lines."""
    lines = [f"dataset {summary['dataset']}: {summary['images']} images"]
    for split, counts in summary["splits"].items():
        lines.append(f"  {split:8s} {counts['images']:7d} images {counts['sentences']:8d} sentences")
    lines.append(f"vocabulary: {summary['vocabulary_size']} words with train count >= {summary['min_word_count']}")
    boxes = summary["boxes"]
    if boxes is None:
        lines.append("boxes: none given (whole image only)")
    else:
        lines.append(
            f"boxes: {boxes['images_with_boxes']} images with boxes; per image min {boxes['min']}, "
            f"mean {boxes['mean']:.2f}, max {boxes['max']}"
        )
        if boxes.get("keys_not_in_dataset"):
            lines.append(f"boxes: note: {boxes['keys_not_in_dataset']} keys name images not in this dataset (ignored)")
    return "\n".join(lines)


def run_validate(args):
    from vsa_tf.data import validate

    try:
        data = config_from_arguments(args, config.DataConfig)
        dataset = _read_dataset(data)
        summary = validate.validate_dataset(
            dataset, data.images, boxes=data.boxes, min_word_count=data.min_word_count, full_decode=args.full_decode
        )
    except validate.DatasetError as error:
        for problem in error.problems:
            print(f"vsa-tf validate: {problem}", file=sys.stderr)
        print(f"vsa-tf validate: {len(error.problems)} problem(s) found", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"vsa-tf validate: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def run_convert_dataset(args):
    from vsa_tf.data import readers

    dataset = _read_dataset(config_from_arguments(args, config.DataConfig))
    readers.write_karpathy_json(dataset, args.out)
    counts = dataset.sentence_counts()
    print(json.dumps({"out": args.out, "splits": {split: {"images": value[0], "sentences": value[1]} for split, value in counts.items()}}))
    return 0
