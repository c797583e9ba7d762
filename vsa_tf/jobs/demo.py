"""The work of the main job's stages (`vsa_tf.jobs.pipeline` orders them, skips and resumes them).

synthetic world → validation → alignment model (BRNN and bag-of-words ablation) → retrieval (Table 1)
and twin binding → MRF snippets and their accuracy for several β → full-frame and region captioners →
caption metrics (Tables 2 and 3) → learned region proposals (an RPN on the BRNN's CNN) in place of the
generator's boxes: recall, MRF alignment and region captions with either → joint embedding (Kiros et al.) with multimodal arithmetic →
SavedModel export (next version) → `report/index.html` with the tables and figures.

Every function takes the pipeline's config (a `vsa_tf.config.PipelineSettings`), its `PipelineFolders` and
the evaluation `split` ("test", or "val" for a dataset without a test split); `truth` (the synthetic
world's truth.json, read) is None for a dataset without one, and the evaluations that need it are left out.
"""

import dataclasses
import json
import os
import statistics

from vsa_tf.align import snippets as snippets_lib
from vsa_tf.config import (
    AlignmentConfig,
    CaptionConfig,
    EmbeddingConfig,
    ImageEncoderConfig,
    ProposalConfig,
    atomic_write_text,
)
from vsa_tf.evaluation import oracle
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import readers, synthetic
from vsa_tf.data.features import FeatureStore
from vsa_tf.evaluation import alignment as alignment_evaluation
from vsa_tf.evaluation import captions as caption_metrics
from vsa_tf.evaluation import proposals as proposal_metrics
from vsa_tf.evaluation import retrieval as retrieval_metrics
from vsa_tf.evaluation.binding import twin_binding_accuracy
from vsa_tf.jobs import alignment as alignment_job
from vsa_tf.jobs import captioning as caption_job
from vsa_tf.jobs import embedding as embedding_job
from vsa_tf.jobs import features as features_job
from vsa_tf.jobs import proposals as proposal_job
from vsa_tf.jobs import retrieval as retrieval_job
from vsa_tf.jobs import run_folder
from vsa_tf.visualize.captions import plot_image_captions, plot_region_captions
from vsa_tf.visualize.curves import plot_training_curves
from vsa_tf.visualize.proposals import plot_proposals


def prepare_world(seed, split_counts, world_dir):
    """Generates the world, or reuses it when it was generated with the same settings.

    `split_counts`: (train, val, test) image counts.
    """
    settings = {"seed": seed, "split_counts": list(split_counts)}
    stamp = os.path.join(world_dir, "demo_settings.json")
    if os.path.exists(stamp):
        with open(stamp, encoding="utf-8") as stream:
            if json.load(stream) == settings:
                return {"reused": True, "out_dir": world_dir}
    summary = synthetic.generate_world(
        world_dir,
        num_images=None,
        seed=seed,
        split_counts=dict(zip(("train", "val", "test"), split_counts)),
        overwrite=True,
    )
    atomic_write_text(stamp, json.dumps(settings) + "\n")
    return summary


def _caption_subset(data_config, count, out_path, split="test"):
    """The data config of a Karpathy JSON copy of the dataset whose `split` keeps its first `count` images
    (captioning is the slow part); the other splits are kept whole."""
    dataset = readers.read_data_config(data_config)
    kept, seen = [], 0
    for record in dataset.records:
        if record.split == split:
            seen += 1
            if count is not None and seen > count:
                continue
        kept.append(record)
    readers.write_karpathy_json(dataclasses.replace(dataset, records=kept), out_path)
    return data_config.replace(dataset=out_path, split_files=None, split_of_file=None)


@dataclasses.dataclass
class PipelineFolders:
    """Where the main job writes: the world, the run folders, the figures and the stage markers (all under
    `out_dir`), and the dataset it reads (a `PipelineConfig`'s, or the world generated into `world`)."""

    out_dir: str

    def __post_init__(self):
        self.out_dir = os.path.abspath(self.out_dir)
        self.world = os.path.join(self.out_dir, "world")
        self.runs = os.path.join(self.out_dir, "runs")
        self.figures = os.path.join(self.out_dir, "figures")
        self.stages = os.path.join(self.out_dir, "stages")
        self.features = os.path.join(self.out_dir, "features")
        self.brnn = os.path.join(self.runs, "alignment_brnn")
        self.bag_of_words = os.path.join(self.runs, "alignment_bow")
        self.full_frame = os.path.join(self.runs, "caption_full_frame")
        self.regions = os.path.join(self.runs, "caption_regions")
        self.train_snippets = os.path.join(self.runs, "snippets_train.json")
        self.val_snippets = os.path.join(self.runs, "snippets_val.json")
        self.region_proposals = os.path.join(self.runs, "proposals_regions")
        self.region_boxes = os.path.join(self.runs, "region_boxes.json")
        self.proposals = os.path.join(self.runs, "proposals")
        self.object_boxes = os.path.join(self.runs, "object_boxes.json")
        self.proposal_boxes = os.path.join(self.runs, "proposals_test_boxes.json")
        self.proposal_report = os.path.join(self.runs, "proposals_comparison.json")
        self.truth_boxes = os.path.join(self.runs, "truth_boxes.json")
        self.truth_features = os.path.join(self.out_dir, "truth_features")

    def truth_path(self, config):
        """The truth JSON of a `PipelineConfig` (the world's when it generates one), or None."""
        return os.path.join(self.world, "truth.json") if config.world is not None else config.truth

    def source_data(self, config):
        """The dataset as given (the world's files when it generates one), before the regions stage."""
        if config.world is None:
            return config.data.replace(features=None)
        return config.data.replace(
            dataset=os.path.join(self.world, "dataset.json"), images=os.path.join(self.world, "images"),
            boxes=os.path.join(self.world, "boxes.json"), proposals=None, features=None,
        )

    def data_config(self, config):
        """The data every stage after the regions stage reads: its boxes file and, in cached mode, features."""
        data = self.source_data(config)
        if config.train_proposals or data.proposals:
            data = data.replace(boxes=self.region_boxes, proposals=None)
        if config.resolved_feature_mode == "cached":
            data = data.replace(features=self.features)
        return data


def _cached(config):
    """Whether a pipeline's config (any `PipelineSettings`) runs on cached features."""
    return getattr(config, "resolved_feature_mode", "pixels") == "cached"


def alignment_image(config):
    """The alignment model's image side of a `PipelineConfig`."""
    if _cached(config):
        return ImageEncoderConfig(mode="cached", pool_size=config.pool_size, normalization="l2")
    if getattr(config, "backbone_weights", None):
        return ImageEncoderConfig(backbone="efficientnet_lite_b0", weights=config.backbone_weights, pool_size=config.pool_size)
    return ImageEncoderConfig(pool_size=config.pool_size)


def train_aligners(config, data, folders):
    """Trains the BRNN alignment model and its bag-of-words ablation (unless `config.bag_of_words` is
    False); returns the BRNN `Run` (best weights)."""
    alignment_config = AlignmentConfig(
        data=data, region_dim=config.region_dim, embedding_dim=min(300, 4 * config.region_dim // 2),
        hidden_dim=config.region_dim, epochs=config.alignment_epochs, batch_size=config.alignment_batch_size,
        image=alignment_image(config), seed=config.seed,
        # Every epoch trained, the best kept; the demo's figures (docs/results.md) were measured with the paper's SGD.
        optimizer=config.alignment_optimizer, learning_rate=config.alignment_learning_rate, patience=0,
        hardest_negative=config.alignment_hardest_negative, warmup_epochs=config.alignment_warmup_epochs,
    )
    brnn = alignment_job.train_alignment(alignment_config, run_dir=folders.brnn, verbose=2).run
    if getattr(config, "bag_of_words", True):
        alignment_job.train_alignment(alignment_config.replace(sentence_encoder="bag_of_words"), run_dir=folders.bag_of_words, verbose=2)
    return brnn


def retrieval_and_binding(runs, truth, split="test"):
    """Table 1 and twin binding of each named `Run` on `split`, from one score matrix per run."""
    retrieval, binding = {}, {}
    for name, run in runs.items():
        scores, sentence_image, filenames = retrieval_job.retrieval_scores(run, split=split)
        retrieval[name] = retrieval_metrics.retrieval_report(scores, sentence_image)
        run.write_json(run_folder.TEST_RETRIEVAL_FILE if split == "test" else f"retrieval_{split}.json", retrieval[name])
        if truth is not None and truth.get("twins"):  # twin images: the synthetic world's binding test
            binding[name] = twin_binding_accuracy(scores, sentence_image, filenames, truth["twins"])
    return retrieval, binding


def snippet_alignment(config, brnn, dataset, truth, truth_path, folders, split="test"):
    """MRF snippets of `split` for every β and their accuracy against `truth_path` (none without it); the
    train/val snippets the region captioner learns from; Figure 5 for a few images. Returns (accuracy by
    β, figure paths)."""
    accuracy = {}
    truth_images = alignment_evaluation.read_truth(truth_path) if truth_path else None
    # With val as the evaluation split, its snippets come from the same scoring as the β table.
    betas = list(config.betas) + ([config.snippet_beta] if split == "val" and config.snippet_beta not in config.betas else [])
    # With truth, each β is also aligned with the words labelled by the boxes only (the whole image
    # scored, not a label): the "boxes_only" entry of its accuracy. One scoring serves both.
    snippets_by_beta, boxes_only = alignment_job.align_split_both_label_sets(
        brnn, split=split, betas=betas, boxes_only=truth_images is not None
    )
    for beta in config.betas:
        if truth_images is not None:
            accuracy[str(beta)] = alignment_evaluation.evaluate_alignment(snippets_by_beta[beta], truth_images)
            accuracy[str(beta)]["boxes_only"] = alignment_evaluation.evaluate_alignment(boxes_only[beta], truth_images)
            boxes_only_phrases = round(accuracy[str(beta)]["boxes_only"]["phrase_accuracy"], 3)
            print(f"    beta={beta}: {json.dumps(_short(accuracy[str(beta)]))}, boxes only: phrase_accuracy {boxes_only_phrases}", flush=True)
    alignment_job.align_split(brnn, split="train", beta=config.snippet_beta, out=folders.train_snippets)
    if split == "val":
        snippets_lib.write_snippets(folders.val_snippets, snippets_by_beta[config.snippet_beta])
    else:
        alignment_job.align_split(brnn, split="val", beta=config.snippet_beta, out=folders.val_snippets)
    figures = []
    for index, record in enumerate(_multi_object_records(dataset.split(split), truth, count=3)):
        path = os.path.join(folders.figures, f"alignment_{index}.png")
        alignment_job.plot_sentence_alignment(brnn, split=split, filename=record.filename, sentence=0, beta=config.snippet_beta, out=path)
        figures.append(path)
    return accuracy, figures


def train_captioners(config, data, folders, split="test"):
    """The full-frame captioner and the region captioner (train + val snippets; train only when val is
    the evaluation split), both on the BRNN's CNN (in cached mode: on the cached features of the frozen
    pretrained backbone, the whole image's for the full frame, each snippet's region for the regions)."""
    # The paper's captioner reads a trained CNN's features: here the alignment model's CNN
    # (cnn_from_alignment), kept fixed or fine-tuned (`fine_tune_caption_cnn`), its features
    # layer-normalised before W_hi (eq. 13). In cached mode the CNN is the fixed pretrained backbone,
    # read from the features stage's store, so no image is decoded again.
    cached = _cached(config)
    image = ImageEncoderConfig(pool_size=config.pool_size, normalization="layer")
    caption_config = CaptionConfig(
        data=data.replace(max_words=config.caption_max_words, features=data.features if cached else None),
        max_length=config.caption_max_words + 1,
        hidden_dim=config.caption_hidden, embedding_dim=config.caption_hidden, epochs=config.caption_epochs,
        batch_size=config.caption_batch_size, beam_size=config.beam_size, seed=config.seed,
        image=image, dropout=0.2, learning_rate=config.caption_learning_rate, patience=0,
    )
    cnn = {} if cached else {"cnn_from_alignment": folders.brnn, "fine_tune_cnn": config.fine_tune_caption_cnn}
    caption_job.train_captioner(caption_config, run_dir=folders.full_frame, verbose=2, **cnn)
    merged_snippets = os.path.join(folders.runs, "snippets_train_val.json")
    _merge_json_lists([folders.train_snippets] + ([folders.val_snippets] if split != "val" else []), merged_snippets)
    caption_job.train_captioner(caption_config, run_dir=folders.regions, snippets_path=merged_snippets, verbose=2, **cnn)


def truth_region_data(config, data, truth_path, folders, split="test"):
    """The data config whose cached features hold every truth object of the evaluated images of `split`.

    The truth's boxes of the first `config.caption_eval_images` images of the split (those Tables 2 and 3
    caption; all when None) are written to `folders.truth_boxes` and their features cached into
    `folders.truth_features` with the features stage's settings (a rerun reuses or resumes them), so Table 3
    reads each truth region's own feature.
    """
    records = readers.read_data_config(data).split(split)[: config.caption_eval_images]
    boxes = alignment_evaluation.write_truth_boxes(truth_path, folders.truth_boxes, [record.filename for record in records])
    most = max([len(value) for value in boxes.values()] + [1])
    features_job.cache_region_features(
        data.dataset, data.images, folders.truth_boxes, config.backbone_weights, folders.truth_features, image_size=data.image_size,
        max_boxes=most, splits=(split,), limit=config.caption_eval_images, pool_size=config.pool_size,
    )
    return data.replace(boxes=folders.truth_boxes, features=folders.truth_features, max_boxes=most)


def caption_evaluation(config, data, dataset, truth, truth_path, folders, split="test", oracle=False, region_data=None):
    """Tables 2 and 3: {"captions": {"beam B": report}, "region_captions" (with a truth file),
    "caption_oracle" (`oracle`: the synthetic world's own sentence distribution)}. Cached-mode captioners read
    `data.features`, and Table 3 the truth regions' own cached features (``region_data``, from `truth_region_data`;
    without it, the truth regions among `data.boxes`)."""
    caption_data = _caption_subset(data, config.caption_eval_images, os.path.join(folders.runs, "caption_eval_dataset.json"), split)
    full_frame = run_folder.Run.load(folders.full_frame, "caption")
    captions = {}
    beams = [config.beam_size] if config.quick else sorted({config.beam_size, 1}, reverse=True)
    for beam in beams:
        captions[f"beam {beam}"] = caption_job.evaluate_captions(
            full_frame, data_config=caption_data, split=split, beam=beam,
            json_out=full_frame.path(f"captions_beam{beam}.json"), nearest_neighbour=beam == beams[0],
        )
    result = {"captions": captions}
    if truth_path:
        regions = caption_data if region_data is None else caption_data.replace(
            boxes=region_data.boxes, features=region_data.features, max_boxes=region_data.max_boxes
        )
        result["region_captions"] = caption_job.evaluate_region_captions(
            folders.regions, truth_path, data_config=regions, split=split, beam=config.beam_size, full_frame_run=full_frame,
            alignment_run=folders.brnn, snippets_path=folders.train_snippets, json_out=os.path.join(folders.regions, "region_captions.json"),
        )
    if oracle:
        result["caption_oracle"] = _caption_oracle(dataset.split(split)[: config.caption_eval_images], truth)
    return result


BOX_SOURCES = ("true_boxes", "generator_boxes", "learned_proposals")


def proposal_demo(config, data, dataset, truth, truth_path, folders, alignment_accuracy):
    """The generator's boxes against learned region proposals, without retraining the aligner or the captioners.

    A region proposal network learns the true object boxes of the train split on the BRNN's CNN, frozen
    (its feature maps are computed once), and proposes `max_boxes` boxes per test image. Those boxes then
    stand where boxes.json stood: recall of the test objects at K (beside the whole image and a 19-box
    grid), the trained BRNN's MRF phrase accuracy at β = `snippet_beta`, and the region captioner's
    captions of each test object from the box of each source that overlaps it most.

    Returns the comparison dict, also written to runs/proposals_comparison.json; a folder that already
    holds it (and its figures) is not computed again, and a folder holding the proposals is not trained again.
    """
    done = _read_json_if(folders.proposal_report)
    if done is not None and all(os.path.exists(path) for path in [done["figures"]["proposals"], *done["figures"]["region_captions"]]):
        print("    already done: " + folders.proposal_report, flush=True)
        return done
    if not os.path.exists(folders.proposal_boxes):
        _write_object_boxes(truth, folders.object_boxes)
        proposal_config = ProposalConfig(
            data=data.replace(boxes=folders.object_boxes), anchor_sizes=config.proposal_anchor_sizes,
            aspect_ratios=config.proposal_aspect_ratios, epochs=config.proposal_epochs, patience=0, seed=config.seed,
            filters=256,  # the demo's proposal table was measured with the earlier default
        )
        proposal_job.train_proposals(proposal_config, run_dir=folders.proposals, verbose=2, cnn_from_alignment=folders.brnn)
        proposal_job.propose_boxes(folders.proposals, data, splits=("test",), out=folders.proposal_boxes)
    truth_images = alignment_evaluation.read_truth(truth_path)
    test_records = dataset.split("test")
    test_names = [record.filename for record in test_records]
    proposals = proposal_metrics.evaluate_proposals(folders.proposal_boxes, truth_images, filenames=test_names)
    generator_boxes = boxes_lib.read_boxes(data.boxes)
    learned_boxes = boxes_lib.read_boxes(folders.proposal_boxes)
    recall = {
        "generator_boxes": proposal_metrics.proposal_recall(generator_boxes, truth_images, filenames=test_names),
        "learned_proposals": proposals["proposals"],
        **proposals["baselines"],
    }
    beta = config.snippet_beta
    snippets = alignment_job.align_split_for_betas(folders.brnn, data.replace(boxes=folders.proposal_boxes), split="test", betas=[beta])[beta]
    phrase_accuracy = {"beta": beta, "learned_proposals": alignment_evaluation.evaluate_alignment(snippets, truth_images)}
    if str(beta) in alignment_accuracy:
        phrase_accuracy["generator_boxes"] = alignment_accuracy[str(beta)]
    else:
        generator_snippets = alignment_job.align_split_for_betas(folders.brnn, data, split="test", betas=[beta])[beta]
        phrase_accuracy["generator_boxes"] = alignment_evaluation.evaluate_alignment(generator_snippets, truth_images)
    sources = {"generator_boxes": generator_boxes, "learned_proposals": learned_boxes}
    region_captions = _region_captions_by_source(
        config, data, test_records[: config.proposal_caption_images], truth_images, sources, folders.regions
    )
    result = {
        "run": folders.proposals,
        "boxes": folders.proposal_boxes,
        "trained_on": "the true object boxes of the train split (truth.json)",
        "recall": recall,
        "phrase_accuracy": phrase_accuracy,
        "region_captions": region_captions,
        "figures": _proposal_figures(config, data, test_records, truth, folders),
    }
    atomic_write_text(folders.proposal_report, json.dumps(result, indent=1, default=str) + "\n")
    return result


def _read_json_if(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def _write_object_boxes(truth, out_path):
    """The world's true object boxes as a boxes JSON (what the proposal network learns to find)."""
    boxes = {filename: [list(obj["box"]) for obj in image["objects"]] for filename, image in truth["images"].items()}
    atomic_write_text(out_path, json.dumps(boxes) + "\n")


def _best_box(candidates, box, max_boxes, width, height):
    """(the box among the first `max_boxes` candidates with the highest IoU with `box`, that IoU).

    An image without candidates gives the whole image (what the alignment model's region 0 is).
    """
    candidates = candidates[:max_boxes]
    if not len(candidates):
        candidates = [[0.0, 0.0, float(width), float(height)]]
    overlaps = proposal_metrics.box_iou(candidates, [box])[:, 0]
    best = int(overlaps.argmax())
    return [float(value) for value in candidates[best]], float(overlaps[best])


def _region_captions_by_source(config, data, records, truth_images, sources, region_run):
    """Table 3's region captions of `records`' objects, each captioned from its true box and from the box of
    each source (`{name: {filename: boxes best first}}`) that overlaps it most (IoU, first `max_boxes`).

    The references are each object's phrases (`caption_job.region_references`); a source's "matched" is
    the share of objects whose chosen box has IoU >= 0.5 with the true box. One captioning pass for all.
    """
    regions = caption_job.region_references(records, truth_images)
    if not regions:
        return {"num_images": len(records), "num_regions": 0}
    boxes_by_path, order, overlaps = {}, [], {name: [] for name in sources}
    for index, region in enumerate(regions):
        image = truth_images[region["filename"]]
        path = os.path.join(data.images, region["filename"])
        chosen = {"true_boxes": [float(value) for value in region["box"]]}
        for name, boxes in sources.items():
            chosen[name], overlap = _best_box(boxes.get(region["filename"], []), region["box"], data.max_boxes, image["width"], image["height"])
            overlaps[name].append(overlap)
        for name in BOX_SOURCES:
            boxes_by_path.setdefault(path, []).append(chosen[name])
            order.append((path, name, index))
    paths = list(boxes_by_path)
    # caption_images returns each image's boxes in order, image after image: regroup `order` the same way.
    position = {path: index for index, path in enumerate(paths)}
    order.sort(key=lambda item: position[item[0]])
    results = caption_job.caption_images(region_run, paths, boxes=boxes_by_path, beam=config.beam_size)
    captions = {name: {} for name in BOX_SOURCES}
    for (_, name, index), result in zip(order, results):
        captions[name][index] = result["caption"]
    references = {index: region["references"] for index, region in enumerate(regions)}
    report = {"num_images": len(records), "num_regions": len(regions), "iou_threshold": 0.5}
    for name in BOX_SOURCES:
        report[name] = caption_metrics.caption_scores(references, caption_metrics.non_empty(captions[name]))
    report["matched"] = {name: sum(value >= 0.5 for value in values) / len(values) for name, values in overlaps.items()}
    report["mean_iou"] = {name: statistics.fmean(values) for name, values in overlaps.items()}
    report["examples"] = [
        {"filename": region["filename"], "references": region["references"], **{name: captions[name][index] for name in BOX_SOURCES}}
        for index, region in enumerate(regions[:10])
    ]
    return report


def _proposal_figures(config, data, test_records, truth, folders):
    """Learned proposals (top 5) with the true boxes on six test images, and region captions of the top 3
    proposals of two images (captions from pixels alone: no boxes file)."""
    with open(folders.proposal_boxes, encoding="utf-8") as stream:
        proposed = json.load(stream)  # {filename: {"boxes", "scores"}}, best first
    items = []
    for record in _multi_object_records(test_records, truth, count=6):
        entry = proposed.get(record.filename, {"boxes": [], "scores": []})
        items.append({
            "image": os.path.join(data.images, record.filename), "boxes": entry["boxes"], "scores": entry["scores"],
            "truth": [obj["box"] for obj in truth["images"][record.filename]["objects"]],
        })
    proposals_figure = plot_proposals(items, os.path.join(folders.figures, "proposals.png"), top=5, columns=3)
    region_figures = []
    for index, item in enumerate(items[:2]):
        if not item["boxes"]:
            continue
        results = caption_job.caption_images(folders.regions, [item["image"]], boxes={item["image"]: item["boxes"][:3]}, beam=config.beam_size)
        figure = os.path.join(folders.figures, f"captions_proposals_{index}.png")
        plot_region_captions(item["image"], [{"box": result["box"], "caption": result["caption"]} for result in results], figure,
                             title=f"{os.path.basename(item['image'])}: the top 3 learned proposals, captioned")
        region_figures.append(figure)
    return {"proposals": proposals_figure, "region_captions": region_figures}


def print_proposals(proposals):
    print("    Proposal recall (IoU >= 0.5, test objects) | R@1 R@5 R@10 R@19", flush=True)
    for name, report in proposals["recall"].items():
        values = report["recall_at"]
        print(f"    {name:43s}| " + " ".join(f"{values.get(key) if values.get(key) is not None else float('nan'):5.1f}" for key in ("1", "5", "10", "19")), flush=True)
    phrase = proposals["phrase_accuracy"]
    print(f"    phrase accuracy, beta={phrase['beta']}: generator's boxes {100 * phrase['generator_boxes']['phrase_accuracy']:.1f} %, "
          f"learned proposals {100 * phrase['learned_proposals']['phrase_accuracy']:.1f} %", flush=True)
    region = proposals["region_captions"]
    for name in BOX_SOURCES:
        if name in region:
            print(f"    region captions from {name:17s}: BLEU-1 {region[name]['Bleu_1']:.3f} BLEU-4 {region[name]['Bleu_4']:.3f}"
                  + (f", matched {100 * region['matched'][name]:.0f} %" if name in region.get("matched", {}) else ""), flush=True)


def training_curves(folders):
    curves = os.path.join(folders.figures, "training_curves.png")
    histories = {
        "alignment (BRNN)": folders.brnn, "alignment (bag of words)": folders.bag_of_words,
        "captioner (full frame)": folders.full_frame, "captioner (regions)": folders.regions,
        "proposals (RPN)": folders.proposals,
    }
    plot_training_curves(
        {name: os.path.join(folder, "history.csv") for name, folder in histories.items() if os.path.exists(os.path.join(folder, "history.csv"))},
        curves,
    )
    return curves


def _short(metrics):
    return {key: (round(value, 3) if isinstance(value, float) else value) for key, value in metrics.items() if not isinstance(value, (dict, list))}


def _merge_json_lists(paths, out_path):
    merged = []
    for path in paths:
        with open(path, encoding="utf-8") as stream:
            merged.extend(json.load(stream))
    atomic_write_text(out_path, json.dumps(merged) + "\n")


def print_retrieval(retrieval, binding, split="test"):
    twins = " | twins img/sent" if binding else ""
    print(f"    {'Table 1 (' + split + ' split)':31s} | annotation R@1 R@5 R@10 medr | search R@1 R@5 R@10 medr{twins}", flush=True)
    for name, metrics in retrieval.items():
        annotation, search = metrics["image_annotation"], metrics["image_search"]
        print(
            f"    {name:31s} | {annotation['r1']:5.1f} {annotation['r5']:5.1f} {annotation['r10']:5.1f} {annotation['medr']:4.0f} "
            f"| {search['r1']:5.1f} {search['r5']:5.1f} {search['r10']:5.1f} {search['medr']:4.0f} "
            + (f"| {binding[name]['image_choice']:5.1f} {binding[name]['sentence_choice']:5.1f}" if name in binding else ""),
            flush=True,
        )


def _caption_oracle(records, truth, samples=2000):
    """Table 2's reference rows: the world's own sentence distribution decoded by MAP and by greedy search.

    What a captioner that had learned the world's sentences perfectly would score with exact MAP
    decoding (the target of beam search) and with greedy decoding, on the evaluated test images.
    """
    references, most_probable, greedy, frequencies = {}, {}, {}, []
    for index, record in enumerate(records):
        decoded = oracle.caption_oracle(truth["images"][record.filename], samples=samples, seed=index)
        references[index] = [sentence.text for sentence in record.sentences]
        most_probable[index] = " ".join(decoded["mode"])
        greedy[index] = " ".join(decoded["greedy"])
        frequencies.append(decoded["mode_frequency"])
    return {
        "most_probable": caption_metrics.caption_scores(references, most_probable),
        "greedy": caption_metrics.caption_scores(references, greedy),
        "median_mode_frequency": statistics.median(frequencies) if frequencies else None,
        "samples": samples,
    }


def print_captions(captions, region_captions=None, oracle=None):
    keys = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
    print("    Table 2: " + " ".join(f"{key:>7s}" for key in keys), flush=True)
    for name, metrics in captions.items():
        rows = [("RNN " + name, metrics.get("model", {}))]
        if "nearest_neighbour" in metrics:
            rows.append(("NN baseline", metrics["nearest_neighbour"]))
        if oracle and name == next(iter(captions)):
            rows += [("oracle MAP", oracle["most_probable"]), ("oracle greedy", oracle["greedy"])]
        for label, values in rows:
            print(f"    {label:12s} " + " ".join(f"{values.get(key, float('nan')):7.3f}" for key in keys), flush=True)
    if not region_captions:
        return
    print("    Table 3 (region references):", flush=True)
    for name in ("region_model", "full_frame_model", "ranking_baseline"):
        if name in region_captions:
            values = region_captions[name]
            print(f"    {name:18s} " + " ".join(f"{values.get(key, float('nan')):7.3f}" for key in keys[:4]), flush=True)


def caption_figures(config, folders, dataset, data, truth, split="test", region_data=None):
    """Paper Figures 6 and 7: generated captions under evaluation images, region captions on their boxes
    (the true objects with a truth file, else the first 3 boxes of the boxes file). Cached-mode runs
    caption the images' cached features (`data.features`; the regions' from ``region_data``)."""
    records = dataset.split(split)[:8]
    paths = [os.path.join(data.images, record.filename) for record in records]
    generated = caption_job.caption_records(folders.full_frame, records, data, beam=config.beam_size)
    items = [
        {"image": path, "caption": caption, "reference": record.sentences[0].raw or record.sentences[0].text}
        for record, path, caption in zip(records, paths, generated)
    ]
    full_figure = os.path.join(folders.figures, "captions_full_frame.png")
    plot_image_captions(items, full_figure)
    region_figures = []
    candidates = dataset.split(split)
    if region_data is not None:  # cached mode: the images whose truth objects have cached features
        cached_images = set(FeatureStore(region_data.features).filenames)
        candidates = [record for record in candidates if record.filename in cached_images]
    region_data = region_data or data
    boxes = boxes_lib.read_boxes(data.boxes) if data.boxes else {}
    for index, record in enumerate(_multi_object_records(candidates, truth, count=3)):
        path = os.path.join(data.images, record.filename)
        if truth is not None:
            image_boxes = [[float(value) for value in obj["box"]] for obj in _objects(truth, record.filename)]
        else:
            image_boxes = [[float(value) for value in box] for box in boxes.get(record.filename, [])[:3]]
        if not image_boxes:
            continue
        captions = caption_job.caption_regions(
            folders.regions, [{"filename": record.filename, "box": box} for box in image_boxes], [record], region_data, beam=config.beam_size
        )
        regions = [{"box": box, "caption": caption} for box, caption in zip(image_boxes, captions) if caption is not None]
        figure = os.path.join(folders.figures, f"captions_regions_{index}.png")
        plot_region_captions(path, regions, figure, title=record.filename)
        region_figures.append(figure)
    return {"full_frame": full_figure, "regions": region_figures}


def _objects(truth, filename):
    return truth.get("images", {}).get(filename, {}).get("objects", [])


def _multi_object_records(records, truth, count):
    """The first `count` records whose image has at least two objects (the interesting alignments); the
    first `count` without a truth file."""
    if truth is None:
        return records[:count]
    chosen = [record for record in records if len(_objects(truth, record.filename)) >= 2][:count]
    return chosen or records[:count]


def embedding_demo(config, data, folders, truth_path, dataset, split="test"):
    """The joint embeddings (LSTM and linear encoders) and multimodal arithmetic: with the synthetic world's
    truth (objects with colours), the precision of attribute swaps and one sheet (pixel mode only); with any
    other data (real photographs, with or without a truth file), contact sheets of word swaps on the split's
    images (`embedding_job.real_photo_arithmetic`)."""
    results = {"retrieval": {}}
    lstm_dir = None
    cached = _cached(config)
    synthetic_truth = bool(truth_path) and _truth_has_attributes(truth_path)
    for encoder in ("lstm", "linear"):
        run_dir = os.path.join(folders.runs, f"embedding_{encoder}")
        embedding_config = EmbeddingConfig(
            data=data, encoder=encoder, embedding_dim=config.region_dim, word_dim=config.region_dim // 2,
            epochs=config.embedding_epochs, batch_size=config.alignment_batch_size, seed=config.seed,
            # the demo's embedding figures were measured with averaged bins; cached mode: the whole image's
            # cached feature as `train-embedding --features` reads it (the linear image encoder, no normalisation)
            image=ImageEncoderConfig(mode="cached") if cached else ImageEncoderConfig(pooling="average"),
            patience=0,
        )
        trained = embedding_job.train_embedding(embedding_config, run_dir, verbose=2)
        # The test split is scored once by the trainer; a dataset without one is scored on the evaluation split.
        results["retrieval"][f"Kiros {encoder}"] = trained.test if split == "test" else retrieval_job.evaluate_retrieval(trained.run, split=split)
        if encoder == "linear" and not synthetic_truth:
            sheets = embedding_job.real_photo_arithmetic(run_dir, data.dataset, data.images, folders.figures, split=split)
            results["arithmetic_sheets"] = [
                {key: sheet[key] for key in ("query", "minus", "plus", "sheet", "neighbours")} for sheet in sheets
            ]
        elif encoder == "linear" and not cached:
            results["arithmetic"] = embedding_job.evaluate_arithmetic(run_dir, truth_path, split=split)
            query = _single_object_image(truth_path, dataset, split)
            if query is not None:
                filename, color = query
                other = "red" if color != "red" else "blue"
                sheet = os.path.join(folders.figures, "arithmetic.png")
                results["arithmetic_example"] = embedding_job.run_arithmetic(
                    run_dir, data.dataset, data.images, filename, [color], [other], top=5, out=sheet, split=split
                )
                results["arithmetic_figure"] = sheet
        elif encoder == "lstm":
            lstm_dir = run_dir
    results["lstm_run"] = lstm_dir
    return results


def _truth_has_attributes(truth_path):
    """Whether a truth file is the synthetic world's (objects with colours), whose arithmetic is scored."""
    with open(truth_path, encoding="utf-8") as stream:
        images = json.load(stream).get("images", {})
    return any("color" in obj for image in images.values() for obj in image.get("objects", []))


def _single_object_image(truth_path, dataset, split="test"):
    with open(truth_path, encoding="utf-8") as stream:
        truth = json.load(stream)
    for record in dataset.split(split):
        objects = _objects(truth, record.filename)
        if len(objects) == 1:
            return record.filename, objects[0]["color"]
    return None
