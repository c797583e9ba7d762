"""The main job on the embedded synthetic world, end to end (what `make demo` runs).

synthetic world → validation → alignment model (BRNN and bag-of-words ablation) → retrieval (Table 1)
and twin binding → MRF snippets and their accuracy for several β → full-frame and region captioners →
caption metrics (Tables 2 and 3) → joint embedding (Kiros et al.) with multimodal arithmetic →
SavedModel export (next version) → `report/index.html` with the tables and figures.
"""

import dataclasses
import json
import os
import shutil
import statistics
import sys
import time
import typing

from vsa_tf.config import (
    AlignmentConfig,
    CaptionConfig,
    DataConfig,
    DemoConfig,
    EmbeddingConfig,
    ImageEncoderConfig,
    atomic_write_text,
    save_config,
)
from vsa_tf.evaluation import oracle
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import readers, validate
from vsa_tf.data import synthetic
from vsa_tf.evaluation import alignment as alignment_evaluation
from vsa_tf.evaluation import captions as caption_metrics
from vsa_tf.evaluation.binding import twin_binding_accuracy
from vsa_tf.jobs import alignment as alignment_job
from vsa_tf.jobs import captioning as caption_job
from vsa_tf.jobs import embedding as embedding_job
from vsa_tf.jobs import export as export_job
from vsa_tf.jobs.demo_report import write_demo_report
from vsa_tf.visualize.captions import plot_image_captions, plot_region_captions
from vsa_tf.visualize.curves import plot_training_curves


class _Stages:
    """Prints numbered stage headers and records each stage's wall time."""
    def __init__(self, total):
        self.total = total
        self.index = 0
        self.seconds = {}
        self._name = None
        self._started = None

    def start(self, name):
        self.stop()
        self.index += 1
        self._name, self._started = name, time.time()
        print(f"\n[{self.index}/{self.total}] {name}", flush=True)

    def stop(self):
        if self._name is not None:
            self.seconds[self._name] = round(time.time() - self._started, 1)
            print(f"    done in {self.seconds[self._name]:.1f} s", flush=True)
            self._name = None


def _prepare_world(config, world_dir):
    """Generates the world, or reuses it when it was generated with the same settings."""
    settings = {
        "seed": config.seed,
        "split_counts": [config.train_images, config.val_images, config.test_images],
    }
    stamp = os.path.join(world_dir, "demo_settings.json")
    if os.path.exists(stamp):
        with open(stamp, encoding="utf-8") as stream:
            if json.load(stream) == settings:
                return {"reused": True, "out_dir": world_dir}
    summary = synthetic.generate_world(
        world_dir,
        num_images=None,
        seed=config.seed,
        split_counts={"train": config.train_images, "val": config.val_images, "test": config.test_images},
        overwrite=True,
    )
    atomic_write_text(stamp, json.dumps(settings) + "\n")
    return summary


def _caption_subset(data_config, dataset_path, count, out_path):
    """A copy of the dataset whose test split keeps its first `count` images (captioning is the slow part)."""
    with open(dataset_path, encoding="utf-8") as stream:
        dataset = json.load(stream)
    kept, seen = [], 0
    for image in dataset["images"]:
        if image["split"] == "test":
            seen += 1
            if count is not None and seen > count:
                continue
        kept.append(image)
    dataset["images"] = kept
    atomic_write_text(out_path, json.dumps(dataset) + "\n")
    return data_config.replace(dataset=out_path)


def run_demo(config):
    """Runs the whole demo; returns the summary dict (also written to out_dir/summary.json).

    Args:
        config: a `DemoConfig`.
    """
    started = time.time()
    stages = _Stages(total=11 if config.run_embedding else 10)
    out_dir = os.path.abspath(config.out_dir)
    world_dir = os.path.join(out_dir, "world")
    runs_dir = os.path.join(out_dir, "runs")
    figures_dir = os.path.join(out_dir, "figures")
    os.makedirs(out_dir, exist_ok=True)
    save_config(config, os.path.join(out_dir, "demo_config.json"))
    for folder in (runs_dir, figures_dir):  # the demo's own outputs of an earlier run
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    summary = {"config": config.to_dict()}

    stages.start("Generate the synthetic world")
    summary["world"] = _prepare_world(config, world_dir)
    data = DataConfig(
        dataset=os.path.join(world_dir, "dataset.json"),
        images=os.path.join(world_dir, "images"),
        boxes=os.path.join(world_dir, "boxes.json"),
        image_size=config.image_size,
        min_word_count=1 if config.quick else 5,
    )
    truth_path = os.path.join(world_dir, "truth.json")

    stages.start("Validate the dataset")
    dataset = readers.read_data_config(data)

    summary["validation"] = validate.validate_dataset(dataset, data.images, boxes_lib.read_boxes(data.boxes))
    print(json.dumps(summary["validation"], indent=None, default=str)[:600], flush=True)

    stages.start("Train the alignment model (BRNN) and the bag-of-words ablation")
    alignment_config = AlignmentConfig(
        data=data, region_dim=config.region_dim, embedding_dim=min(300, 4 * config.region_dim // 2),
        hidden_dim=config.region_dim, epochs=config.alignment_epochs, batch_size=config.alignment_batch_size,
        image=ImageEncoderConfig(pool_size=config.pool_size), seed=config.seed,
    )
    brnn_dir = os.path.join(runs_dir, "alignment_brnn")
    bow_dir = os.path.join(runs_dir, "alignment_bow")
    alignment_job.train_alignment(alignment_config, run_dir=brnn_dir, verbose=2)
    alignment_job.train_alignment(alignment_config.replace(sentence_encoder="bag_of_words"), run_dir=bow_dir, verbose=2)

    stages.start("Evaluate retrieval (Table 1) and attribute binding on twin images")
    with open(truth_path, encoding="utf-8") as stream:
        truth = json.load(stream)
    retrieval = {}
    binding = {}
    for name, run_dir in (("BRNN (ours)", brnn_dir), ("Bag of words", bow_dir)):
        retrieval[name] = alignment_job.evaluate_retrieval(run_dir, split="test", json_out=os.path.join(run_dir, "retrieval_test.json"))
        scores, sentence_image, filenames = alignment_job.retrieval_scores(run_dir, split="test")
        binding[name] = twin_binding_accuracy(scores, sentence_image, filenames, truth.get("twins", []))
    summary["retrieval"] = retrieval
    summary["binding"] = binding
    _print_retrieval(retrieval, binding)

    stages.start("MRF snippet alignment for several β (eqs. 10-12)")
    alignment_accuracy = {}
    truth_images = alignment_evaluation.read_truth(truth_path)
    for beta, snippets in alignment_job.align_split_for_betas(brnn_dir, split="test", betas=config.betas).items():
        alignment_accuracy[str(beta)] = alignment_evaluation.evaluate_alignment(snippets, truth_images)
        print(f"    beta={beta}: {json.dumps(_short(alignment_accuracy[str(beta)]))}", flush=True)
    summary["alignment_accuracy"] = alignment_accuracy
    train_snippets = os.path.join(runs_dir, "snippets_train.json")
    alignment_job.align_split(brnn_dir, split="train", beta=config.snippet_beta, out=train_snippets)
    alignment_job.align_split(brnn_dir, split="val", beta=config.snippet_beta, out=os.path.join(runs_dir, "snippets_val.json"))
    figures = []
    for index, record in enumerate(_multi_object_records(dataset.split("test"), truth, count=3)):
        path = os.path.join(figures_dir, f"alignment_{index}.png")
        alignment_job.plot_sentence_alignment(brnn_dir, split="test", filename=record.filename, sentence=0, beta=config.snippet_beta, out=path)
        figures.append(path)
    summary["alignment_figures"] = figures

    stages.start("Train the full-frame and the region captioners (multimodal RNN)")
    # The paper's captioner reads a trained CNN's features: here the alignment model's CNN
    # (cnn_from_alignment), fine-tuned with the captioner, its features layer-normalised before W_hi (eq. 13).
    caption_config = CaptionConfig(
        data=data.replace(max_words=config.caption_max_words), max_length=config.caption_max_words + 1,
        hidden_dim=config.caption_hidden, embedding_dim=config.caption_hidden, epochs=config.caption_epochs,
        batch_size=config.caption_batch_size, beam_size=config.beam_size, seed=config.seed,
        image=ImageEncoderConfig(pool_size=config.pool_size, normalization="layer"), dropout=0.2,
        learning_rate=config.caption_learning_rate,
    )
    full_dir = os.path.join(runs_dir, "caption_full_frame")
    region_dir = os.path.join(runs_dir, "caption_regions")
    caption_job.train_captioner(caption_config, run_dir=full_dir, verbose=2, cnn_from_alignment=brnn_dir, fine_tune_cnn=True)
    merged_snippets = os.path.join(runs_dir, "snippets_train_val.json")
    _merge_json_lists([train_snippets, os.path.join(runs_dir, "snippets_val.json")], merged_snippets)
    caption_job.train_captioner(
        caption_config, run_dir=region_dir, snippets_path=merged_snippets, verbose=2, cnn_from_alignment=brnn_dir,
        fine_tune_cnn=True,
    )

    stages.start("Evaluate captions (Tables 2 and 3)")
    caption_data = _caption_subset(data, data.dataset, config.caption_eval_images, os.path.join(runs_dir, "caption_eval_dataset.json"))
    captions = {}
    beams = [config.beam_size] if config.quick else sorted({config.beam_size, 1}, reverse=True)
    for beam in beams:
        captions[f"beam {beam}"] = caption_job.evaluate_captions(
            full_dir, data_config=caption_data, split="test", beam=beam, json_out=os.path.join(full_dir, f"captions_beam{beam}.json"),
            nearest_neighbour=beam == beams[0],
        )
    summary["captions"] = captions
    summary["caption_oracle"] = _caption_oracle(dataset.split("test")[: config.caption_eval_images], truth)
    summary["region_captions"] = caption_job.evaluate_region_captions(
        region_dir, truth_path, data_config=caption_data, split="test", beam=config.beam_size, full_frame_run=full_dir,
        alignment_run=brnn_dir, snippets_path=train_snippets, json_out=os.path.join(region_dir, "region_captions.json"),
    )
    _print_captions(captions, summary["region_captions"], summary["caption_oracle"])
    summary["caption_figures"] = _caption_figures(caption_job, full_dir, region_dir, dataset, data, truth, figures_dir, config)

    if config.run_embedding:
        stages.start("Joint embedding (Kiros et al. 2014) and multimodal arithmetic")
        summary["embedding"] = _embedding_demo(config, data, runs_dir, figures_dir, truth_path, dataset)

    stages.start("Export SavedModels for TF Serving")
    exported = export_job.export_models(alignment_run=brnn_dir, caption_run=full_dir, out_dir=config.saved_models, beam=config.beam_size)
    summary["export"] = {name: value for name, value in exported.items()}
    print(json.dumps({name: value.get("path") if isinstance(value, dict) else value for name, value in exported.items()}), flush=True)

    stages.start("Training curves and the report")

    curves = os.path.join(figures_dir, "training_curves.png")
    plot_training_curves(
        {
            "alignment (BRNN)": os.path.join(brnn_dir, "history.csv"),
            "alignment (bag of words)": os.path.join(bow_dir, "history.csv"),
            "captioner (full frame)": os.path.join(full_dir, "history.csv"),
            "captioner (regions)": os.path.join(region_dir, "history.csv"),
        },
        curves,
    )
    summary["curves"] = curves
    stages.stop()
    summary["stage_seconds"] = stages.seconds
    summary["total_seconds"] = round(time.time() - started, 1)

    summary["report"] = write_demo_report(summary, config.report_dir)
    atomic_write_text(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nDemo finished in {summary['total_seconds']:.0f} s. Report: {summary['report']}", flush=True)
    return summary


def _short(metrics):
    return {key: (round(value, 3) if isinstance(value, float) else value) for key, value in metrics.items() if not isinstance(value, (dict, list))}


def _merge_json_lists(paths, out_path):
    merged = []
    for path in paths:
        with open(path, encoding="utf-8") as stream:
            merged.extend(json.load(stream))
    atomic_write_text(out_path, json.dumps(merged) + "\n")


def _print_retrieval(retrieval, binding):
    print("    Table 1 (test split)            | annotation R@1 R@5 R@10 medr | search R@1 R@5 R@10 medr | twins img/sent", flush=True)
    for name, metrics in retrieval.items():
        annotation, search = metrics["image_annotation"], metrics["image_search"]
        print(
            f"    {name:31s} | {annotation['r1']:5.1f} {annotation['r5']:5.1f} {annotation['r10']:5.1f} {annotation['medr']:4.0f} "
            f"| {search['r1']:5.1f} {search['r5']:5.1f} {search['r10']:5.1f} {search['medr']:4.0f} "
            f"| {binding[name]['image_choice']:5.1f} {binding[name]['sentence_choice']:5.1f}",
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


def _print_captions(captions, region_captions, oracle=None):
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
    print("    Table 3 (region references):", flush=True)
    for name in ("region_model", "full_frame_model", "ranking_baseline"):
        if name in region_captions:
            values = region_captions[name]
            print(f"    {name:18s} " + " ".join(f"{values.get(key, float('nan')):7.3f}" for key in keys[:4]), flush=True)


def _caption_figures(caption_job, full_dir, region_dir, dataset, data, truth, figures_dir, config):
    """Paper Figures 6 and 7: generated captions under test images, region captions on their boxes."""
    test_records = dataset.split("test")[:8]
    paths = [os.path.join(data.images, record.filename) for record in test_records]
    generated = caption_job.caption_images(full_dir, paths, beam=config.beam_size)
    items = [
        {"image": path, "caption": result["caption"], "reference": record.sentences[0].raw or record.sentences[0].text}
        for record, path, result in zip(test_records, paths, generated)
    ]
    full_figure = os.path.join(figures_dir, "captions_full_frame.png")
    plot_image_captions(items, full_figure)
    region_figures = []
    for index, record in enumerate(_multi_object_records(dataset.split("test"), truth, count=3)):
        path = os.path.join(data.images, record.filename)
        objects = truth["images"][record.filename]["objects"]
        results = caption_job.caption_images(region_dir, [path], boxes={path: [obj["box"] for obj in objects]}, beam=config.beam_size)
        regions = [{"box": result["box"], "caption": result["caption"]} for result in results]
        figure = os.path.join(figures_dir, f"captions_regions_{index}.png")
        plot_region_captions(path, regions, figure, title=record.filename)
        region_figures.append(figure)
    return {"full_frame": full_figure, "regions": region_figures}


def _multi_object_records(records, truth, count):
    """The first `count` records whose image has at least two objects (the interesting alignments)."""
    chosen = [record for record in records if len(truth["images"][record.filename]["objects"]) >= 2][:count]
    return chosen or records[:count]


def _embedding_demo(config, data, runs_dir, figures_dir, truth_path, dataset):

    results = {"retrieval": {}}
    lstm_dir = None
    for encoder in ("lstm", "linear"):
        run_dir = os.path.join(runs_dir, f"embedding_{encoder}")
        embedding_config = EmbeddingConfig(
            data=data, encoder=encoder, embedding_dim=config.region_dim, word_dim=config.region_dim // 2,
            epochs=config.embedding_epochs, batch_size=config.alignment_batch_size, seed=config.seed,
            image=ImageEncoderConfig(pooling="average"),  # the demo's embedding figures were measured with averaged bins
        )
        embedding_job.train_embedding(embedding_config, run_dir, verbose=2)
        results["retrieval"][f"Kiros {encoder}"] = alignment_job.evaluate_retrieval(run_dir, split="test")
        if encoder == "linear":
            results["arithmetic"] = embedding_job.evaluate_arithmetic(run_dir, truth_path, split="test")
            query = _single_object_image(truth_path, dataset)
            if query is not None:
                filename, color = query
                other = "red" if color != "red" else "blue"
                sheet = os.path.join(figures_dir, "arithmetic.png")
                results["arithmetic_example"] = embedding_job.run_arithmetic(
                    run_dir, data.dataset, data.images, filename, [color], [other], top=5, out=sheet
                )
                results["arithmetic_figure"] = sheet
        else:
            lstm_dir = run_dir
    results["lstm_run"] = lstm_dir
    return results


def _single_object_image(truth_path, dataset):
    with open(truth_path, encoding="utf-8") as stream:
        truth = json.load(stream)
    for record in dataset.split("test"):
        objects = truth["images"][record.filename]["objects"]
        if len(objects) == 1:
            return record.filename, objects[0]["color"]
    return None


def main_summary_line(summary):
    """One line for logs."""
    brnn = summary["retrieval"]["BRNN (ours)"]
    return (
        f"R@1 annotation {brnn['image_annotation']['r1']:.1f}, search {brnn['image_search']['r1']:.1f}; "
        f"total {summary['total_seconds']:.0f} s"
    )


if __name__ == "__main__":
    run_demo(DemoConfig.quick_config() if "--quick" in sys.argv else DemoConfig())
