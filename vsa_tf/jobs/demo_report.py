"""Turns the main job's summary (the demo's, or `vsa-tf pipeline`'s) into `report/index.html`: Tables 1-3, alignment accuracy, figures."""

import math

from vsa_tf.visualize.report import Report

CAPTION_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def _number(value, scale=1.0):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return float(value) * scale


def write_demo_report(summary, report_dir):
    """Writes the report folder and returns the path of its index.html."""
    world = summary["config"].get("world")
    name = "the synthetic world" if world else summary.get("dataset", {}).get("name", "a dataset")
    report = Report(f"vsa_tf: deep visual-semantic alignments on {name}")
    _add_overview(report, summary)
    _add_retrieval(report, summary)
    _add_alignment(report, summary)
    _add_captions(report, summary)
    _add_region_captions(report, summary)
    _add_proposals(report, summary)
    _add_embedding(report, summary)
    _add_curves_and_export(report, summary)
    return report.write(report_dir)


def _add_overview(report, summary):
    """The note on the synthetic world's size, seed and total time."""
    config = summary["config"]
    counts = summary.get("validation", {}).get("splits") or {}
    sizes = " / ".join(f"{value['images']} {split}" for split, value in counts.items())
    split = summary.get("evaluation_split", "test")
    report.add_text(
        (f"World of seed {config['seed']}" if config.get("world") else f"Dataset {summary.get('dataset', {}).get('path', '')}")
        + (f": {sizes} images" if sizes else "") + f". Models seeded {config['seed']}. Evaluations on the {split} split"
        + (" (the dataset has no test split: val, which also selected the models)" if split == "val" else "")
        + f". Total time {summary.get('total_seconds', 0):.0f} s on this machine"
        + (" (quick smoke run: numbers are not meaningful)." if config.get("quick") else "."),
        note=True,
    )


def _add_retrieval(report, summary):
    """Table 1: image annotation and image search recalls, with the binding-twin choices."""
    report.add_heading(f"Image-sentence retrieval (Table 1 style, {summary.get('evaluation_split', 'test')} split)")
    rows = []
    retrieval = dict(summary["retrieval"])
    retrieval.update(summary.get("embedding", {}).get("retrieval", {}))
    retrieval = {name: metrics for name, metrics in retrieval.items() if metrics}  # a run scored on no split is left out
    for name, metrics in retrieval.items():
        annotation, search = metrics["image_annotation"], metrics["image_search"]
        binding = summary.get("binding", {}).get(name, {})
        twins = [_number(binding.get("image_choice")), _number(binding.get("sentence_choice"))] if summary.get("binding") else []
        rows.append(
            [name]
            + [annotation[key] for key in ("r1", "r5", "r10")]
            + [annotation["medr"]]
            + [search[key] for key in ("r1", "r5", "r10")]
            + [search["medr"], *twins]
        )
    columns = ["Model", "Ann R@1", "R@5", "R@10", "Med r", "Search R@1", "R@5", "R@10", "Med r"]
    title = f"Image annotation and image search on {next(iter(retrieval.values()))['n_images']} images"
    if summary.get("binding"):  # twin images: the synthetic world's binding test
        columns += ["Twin image %", "Twin sentence %"]
        title += "; twin columns: % of binding-swapped twin comparisons won (50 = chance)"
    report.add_table(title, columns, rows)


def _add_alignment(report, summary):
    """Snippet alignment accuracy per β, and the alignment figures."""
    if not summary.get("alignment_accuracy") and not summary.get("alignment_figures"):
        return
    report.add_heading("Snippet alignment against ground truth (MRF, eqs. 10-12)")
    rows = []
    for beta, metrics in summary.get("alignment_accuracy", {}).items():
        boxes_only = metrics.get("boxes_only", {})  # runs before box-only labels have none: a dash
        rows.append([
            f"β = {beta}", _number(metrics.get("phrase_accuracy"), 100), _number(metrics.get("word_accuracy"), 100),
            _number(boxes_only.get("phrase_accuracy"), 100),
        ])
    if rows:
        report.add_table(
            "Phrase accuracy: head word in a snippet whose box has IoU ≥ 0.5 with the object; boxes only: the words "
            "labelled by the image's boxes, the whole image scored but not a label",
            ["β", "Phrase %", "Word %", "Phrase %, boxes only"], rows,
        )
    for path in summary.get("alignment_figures", []):
        report.add_figure(path, "Words coloured by their MRF region, with v·s scores (paper Figure 5)")


def _add_captions(report, summary):
    """Table 2: full-image caption metrics of each model, the baselines, and the caption figure."""
    report.add_heading("Full-image captions (Table 2 style)")
    rows = []
    for name, result in summary["captions"].items():
        rows.append([f"Multimodal RNN, {name}"] + [_number(result["model"].get(key)) for key in CAPTION_KEYS]
                    + [_number(result.get("verbatim_fraction"), 100), _number(result.get("distinct_fraction"), 100)])
    first = next(iter(summary["captions"].values()))
    if "nearest_neighbour" in first:
        rows.append(["Nearest neighbour"] + [_number(first["nearest_neighbour"].get(key)) for key in CAPTION_KEYS] + ["–", "–"])
    oracle = summary.get("caption_oracle")
    if oracle:
        for name, key in (("most probable sentence", "most_probable"), ("greedy", "greedy")):
            rows.append([f"World's own sentence distribution, {name}"]
                        + [_number(oracle[key].get(metric)) for metric in CAPTION_KEYS] + ["–", "–"])
    split = summary.get("evaluation_split", "test")
    report.add_table(f"coco-caption metrics on the {split} split", ["Model", *CAPTION_KEYS, "Verbatim %", "Distinct %"], rows, digits=3)
    figures = summary.get("caption_figures", {})
    if figures.get("full_frame"):
        report.add_figure(figures["full_frame"], f"Generated captions on {split} images (paper Figure 6)", wide=True)


def _add_region_captions(report, summary):
    """Table 3: region caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr), and the region caption figures."""
    region = summary.get("region_captions", {})
    figures = summary.get("caption_figures", {}).get("regions", [])
    if not region and not figures:
        return
    report.add_heading("Region captions (Table 3 style)")
    rows = []
    for key, label in (("region_model", "RNN trained on region snippets"), ("full_frame_model", "RNN trained on full frames"),
                       ("ranking_baseline", "Ranking baseline (best training snippet)")):
        if key in region:
            rows.append([label] + [_number(region[key].get(name)) for name in CAPTION_KEYS])
    if rows:
        report.add_table(f"Region captions against the objects' phrases ({region.get('num_regions', '?')} objects)",
                         ["Model", *CAPTION_KEYS], rows, digits=3)
    for path in figures:
        report.add_figure(path, "Region captions drawn on boxes (paper Figure 7)")


PROPOSAL_ROWS = (
    ("generator_boxes", "Generator's boxes (boxes.json)"),
    ("learned_proposals", "Learned proposals (RPN on the BRNN's CNN)"),
    ("whole_image", "Whole image only"),
    ("grid_19", "Fixed grid of 19 boxes"),
    ("true_boxes", "True object boxes"),
)
RECALL_KS = ("1", "5", "10", "19")


def _add_proposals(report, summary):
    """The generator's boxes against learned proposals: recall, MRF phrase accuracy, region captions, figures."""
    proposals = summary.get("proposals")
    if not proposals:
        return
    report.add_heading("Generator's boxes vs learned proposals (test split, neither model retrained)")
    recall, phrase = proposals["recall"], proposals["phrase_accuracy"]
    region = proposals.get("region_captions", {})
    rows = []
    for key, label in PROPOSAL_ROWS:
        if key not in recall and key not in region:
            continue
        values = recall.get(key, {}).get("recall_at", {})
        accuracy = phrase.get(key, {}).get("phrase_accuracy")
        rows.append(
            [label]
            + [_number(values.get(k)) for k in RECALL_KS]
            + [_number(accuracy, 100)]
            + [_three_digits(region.get(key, {}).get(name)) for name in ("Bleu_1", "Bleu_4", "CIDEr")]
            + [_number(region.get("matched", {}).get(key), 100)]
        )
    num_boxes = recall.get("learned_proposals", {}).get("num_boxes", "?")
    report.add_table(
        f"Recall: % of the {num_boxes} test objects covered (IoU ≥ 0.5) by one of the top K boxes. Phrase %: MRF "
        f"(β = {phrase['beta']}) head words aligned to a box with IoU ≥ 0.5 with their object, the BRNN trained on the "
        f"generator's boxes. Region captions: the region captioner on each of the {region.get('num_regions', '?')} objects "
        f"of {region.get('num_images', '?')} test images, from the box of that source overlapping it most; matched %: "
        "objects whose box has IoU ≥ 0.5. The proposal network learned the train split's true object boxes.",
        ["Regions", "R@1", "R@5", "R@10", "R@19", "Phrase %", "Region BLEU-1", "BLEU-4", "CIDEr", "Matched %"],
        rows,
    )
    figures = proposals.get("figures", {})
    if figures.get("proposals"):
        report.add_figure(figures["proposals"], "Learned proposals on test images: the top 5 numbered by rank with their "
                          "objectness, the true object boxes dashed white", wide=True)
    for path in figures.get("region_captions", []):
        report.add_figure(path, "Region captions of the top 3 learned proposals (no boxes file)")


def _three_digits(value):
    number = _number(value)
    return f"{number:.3f}" if isinstance(number, float) else number


def _add_embedding(report, summary):
    """The joint embedding's multimodal arithmetic, when the demo trained one."""
    embedding = summary.get("embedding")
    if embedding:
        report.add_heading("Joint embedding (Kiros et al. 2014): multimodal arithmetic")
        arithmetic = embedding.get("arithmetic", {})
        rows = []
        for kind, values in arithmetic.items():
            rows.append([f"{kind} swap", _number(values.get("arithmetic_precision"), 100),
                         _number(values.get("nearest_neighbour_precision"), 100), values.get("queries", "–")])
        if rows:
            report.add_table("precision@5: neighbour has the new attribute and keeps the others",
                             ["Swap", "Arithmetic %", "Plain neighbours %", "Queries"], rows)
        if embedding.get("arithmetic_figure"):
            report.add_figure(embedding["arithmetic_figure"], "Image − old colour + new colour: nearest images")
        for sheet in embedding.get("arithmetic_sheets", []):
            report.add_figure(sheet["sheet"], f"{sheet['query']} − {' '.join(sheet['minus'])} + {' '.join(sheet['plus'])}: nearest images")


def _add_curves_and_export(report, summary):
    """Training curves, the SavedModels written and the wall time per stage."""
    report.add_heading("Training curves")
    if summary.get("curves"):
        report.add_figure(summary["curves"], "Loss and validation metrics per epoch", wide=True)
    report.add_heading("Export and timings")
    export = summary.get("export", {})
    rows = [[name, value.get("version", "–"), value.get("path", "–")] for name, value in export.items() if isinstance(value, dict)]
    report.add_table("SavedModels written for TF Serving", ["Model", "Version", "Path"], rows)
    report.add_table("Wall time per stage", ["Stage", "Seconds"], [[name, seconds] for name, seconds in summary.get("stage_seconds", {}).items()])
