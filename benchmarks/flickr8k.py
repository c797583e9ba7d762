"""Benchmark: the paper's Flickr8K rows on real photographs, as one `vsa-tf pipeline` run, beside the paper.

A thin call of `vsa_tf.jobs.pipeline.run_pipeline` on the shared Flickr8k copy: cached EfficientNet-Lite0
features (224 x 224, whole image + 19 boxes of boxes.json), the BRNN and the bag-of-words ablation, MRF
snippets and their grounding against truth.json, the full-frame and region captioners, Kiros et al.'s joint
embeddings and arithmetic sheets, the SavedModel export and the HTML report, in one resumable folder (a rerun
skips finished stages; a killed stage resumes). The official Flickr8k test split is held out of the shared
copy, so the pipeline evaluates on val, which also selected the models: the figures carry that selection effect.

    .venv/bin/python benchmarks/flickr8k.py --root ../shared/data/flickr8k --weights lite0.weights.h5 --out /tmp/f8k
    # a plumbing check on a subset (first N train / M val images):
    .venv/bin/python benchmarks/flickr8k.py --root ... --weights ... --out /tmp/f8k_small --train-images 300 \
        --val-images 100 --alignment-epochs 1 --caption-epochs 1

Feature throughput against a PyTorch forward of the same network is `benchmarks/feature_throughput.py`.
Prints one JSON object: the pipeline's seconds per stage and its results next to the paper's Flickr8K numbers.
"""

import argparse
import contextlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from vsa_tf.config import CACHED_FEATURE_IMAGE_SIZE, DataConfig, PipelineConfig, atomic_write_text  # noqa: E402
from vsa_tf.data import readers  # noqa: E402

# Karpathy & Fei-Fei 2015: Table 1 (Flickr8K, "Our model: BRNN"), Table 2 (Flickr8K) and the Table 3 text
# (region / full-frame model on their region annotations: CIDEr 61.6 / 20.3, METEOR 15.8 / 13.3, ROUGE 35.1 / 21.0).
PAPER = {
    "retrieval": {"image_annotation": {"r1": 16.5, "r5": 40.6, "r10": 54.2, "medr": 7.6},
                  "image_search": {"r1": 11.8, "r5": 32.1, "r10": 44.7, "medr": 12.4}},
    "captions": {"Bleu_1": 57.9, "Bleu_2": 38.3, "Bleu_3": 24.5, "Bleu_4": 16.0, "METEOR": 16.7, "CIDEr": 31.8},
    "region_captions": {"region_model": {"CIDEr": 61.6, "METEOR": 15.8, "ROUGE_L": 35.1},
                        "full_frame_model": {"CIDEr": 20.3, "METEOR": 13.3, "ROUGE_L": 21.0}},
}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="Flickr8k folder (dataset_flickr8k.json, images/, boxes.json, truth.json)")
    parser.add_argument("--weights", required=True, help="EfficientNet-Lite0 .weights.h5 (`vsa-tf convert-efficientnet-lite`)")
    parser.add_argument("--out", default="/tmp/vsa_flickr8k", help="the pipeline's folder (not the repo); a rerun resumes it")
    parser.add_argument("--train-images", type=int, default=None, help="use only the first N train images")
    parser.add_argument("--val-images", type=int, default=None, help="use only the first N val images")
    parser.add_argument("--alignment-epochs", type=int, default=None, help="(default: the pipeline's)")
    parser.add_argument("--caption-epochs", type=int, default=None, help="(default: the pipeline's)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the result here")
    return parser.parse_args(argv)


def subset_dataset(root, work, train_images, val_images):
    """(dataset, boxes) paths: the shared files, or Karpathy JSON + boxes JSON of the first N train / M val
    images written under `work` (validation rejects boxes of images that are not in the dataset)."""
    source, boxes_source = os.path.join(root, "dataset_flickr8k.json"), os.path.join(root, "boxes.json")
    if train_images is None and val_images is None:
        return source, boxes_source
    data = readers.load_json(source, "Flickr8k dataset file")
    limits, counts, kept = {"train": train_images, "val": val_images}, {"train": 0, "val": 0}, []
    for entry in data["images"]:
        split = entry.get("split")
        if split in limits and (limits[split] is None or counts[split] < limits[split]):
            kept.append(entry)
            counts[split] += 1
    name = f"train{counts['train']}_val{counts['val']}"
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, f"dataset_{name}.json")
    atomic_write_text(path, json.dumps({"images": kept, "dataset": "flickr8k"}) + "\n")
    boxes = readers.load_json(boxes_source, "Flickr8k boxes file")
    filenames = {entry["filename"] for entry in kept}
    boxes_path = os.path.join(work, f"boxes_{name}.json")
    atomic_write_text(boxes_path, json.dumps({key: value for key, value in boxes.items() if key in filenames}) + "\n")
    return path, boxes_path


def pipeline_config(args):
    dataset, boxes = subset_dataset(args.root, os.path.join(args.out, "subset"), args.train_images, args.val_images)
    truth = os.path.join(args.root, "truth.json")
    budgets = {name: value for name, value in (("alignment_epochs", args.alignment_epochs), ("caption_epochs", args.caption_epochs))
               if value is not None}
    return PipelineConfig(
        data=DataConfig(dataset=dataset, images=os.path.join(args.root, "images"), boxes=boxes, image_size=CACHED_FEATURE_IMAGE_SIZE),
        truth=truth if os.path.isfile(truth) else None, backbone_weights=args.weights, **budgets,
    )


def _scaled(metrics, keys):
    """Caption metrics as the paper prints them (x 100)."""
    return {key: round(100.0 * metrics[key], 1) for key in keys if metrics.get(key) is not None}


def beside_the_paper(summary):
    """The pipeline summary's Flickr8K rows next to the paper's."""
    retrieval = summary.get("retrieval", {})
    beam = summary.get("config", {}).get("beam_size")
    captions = summary.get("captions", {}).get(f"beam {beam}", {})  # the paper's beam (7)
    region = summary.get("region_captions", {})
    keys = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
    return {
        "retrieval": {"paper BRNN": PAPER["retrieval"], **retrieval},
        "captions": {"paper": PAPER["captions"], "model": _scaled(captions.get("model", {}), keys),
                     "nearest_neighbour": _scaled(captions.get("nearest_neighbour") or {}, keys)},
        "region_captions": {"paper": PAPER["region_captions"],
                            **{name: _scaled(region[name], keys) for name in ("region_model", "full_frame_model", "ranking_baseline")
                               if name in region}},
        "grounding": summary.get("alignment_accuracy", {}),
        "kiros": summary.get("embedding", {}).get("retrieval", {}),
        "stage_seconds": summary.get("stage_seconds", {}),
        "total_seconds": summary.get("total_seconds"),
        "report": summary.get("report"),
    }


def main(argv=None):
    from vsa_tf.jobs.pipeline import run_pipeline

    args = parse_arguments(argv)
    # The pipeline's progress goes to stderr so that stdout carries only the JSON result.
    with contextlib.redirect_stdout(sys.stderr):
        summary = run_pipeline(pipeline_config(args), args.out)
    text = json.dumps(beside_the_paper(summary), indent=2, default=str)
    if args.json_path:
        atomic_write_text(args.json_path, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
