"""Benchmark: the README's quick start, run as written, and the figures it gives (issue 14).

Reads the first ```bash block under "## Quick start" in README.md, runs its commands one by one in a
working folder (`--out`, resumable: a command whose outputs exist is skipped) with the package's
`vsa-tf` (this interpreter's), and prints one JSON object: seconds per command, test retrieval
(R@1/5/10/median rank both ways, `retrieval.json`), phrase accuracy of the train snippets
(`evaluate-alignment`), test captions (BLEU-1..4, METEOR, ROUGE-L, CIDEr, distinct and verbatim
fractions, nearest-neighbour CIDEr, `captions.json`) and the exported versions. docs/results.md
quotes these figures; rerunning this script is how a reader checks them.

    .venv/bin/python benchmarks/quick_start.py --out /tmp/quick_start

Nothing else is compared here: the limit is the docs' table (within run-to-run noise, stated there).
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
# The output each command leaves (checked before rerunning it: the benchmark resumes after a kill).
OUTPUTS = {
    "synth": "world/dataset.json",
    "validate": None,
    "train-align": "runs/align/model.weights.h5",
    "evaluate-retrieval": "retrieval.json",
    "align": "snippets.json",
    "evaluate-alignment": "alignment.json",
    "caption": None,
    "evaluate-captions": "captions.json",
    "export": "saved_models",
}


def quick_start_commands(readme=README):
    """The `vsa-tf ...` commands of the README's quick-start bash block, as argument lists."""
    with open(readme, encoding="utf-8") as stream:
        text = stream.read()
    section = text.split("## Quick start", 1)
    if len(section) != 2:
        raise ValueError(f"{readme}: no '## Quick start' section")
    block = re.search(r"```bash\n(.*?)```", section[1], flags=re.S)
    if block is None:
        raise ValueError(f"{readme}: the quick-start section has no ```bash block")
    commands = []
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words = shlex.split(line)
            if words[0] != "vsa-tf":
                raise ValueError(f"{readme}: quick-start line {line!r} is not a vsa-tf command")
            commands.append(words[1:])
    return commands


def output_of(arguments):
    """The file a command writes (None: always run); train-caption's folder comes from its --out."""
    name = arguments[0]
    if name == "train-caption":
        return os.path.join(arguments[arguments.index("--out") + 1], "model.weights.h5")
    if name == "evaluate-alignment" and "--json" not in arguments:
        return "alignment.json"
    return OUTPUTS.get(name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="working folder (resumable)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    timings_path = os.path.join(args.out, "timings.json")
    timings = {}
    if os.path.exists(timings_path):
        with open(timings_path, encoding="utf-8") as stream:
            timings = json.load(stream)
    executable = [sys.executable, "-m", "vsa_tf.cli"]
    for index, arguments in enumerate(quick_start_commands()):
        if arguments[0] == "evaluate-alignment" and "--json" not in arguments:
            arguments = arguments + ["--json", "alignment.json"]  # keeps its figures (the README prints them)
        key = f"{index:02d} {' '.join(arguments[:1] + [word for word in arguments[1:] if word.startswith('runs/')][:1])}"
        output = output_of(arguments)
        if output and os.path.exists(os.path.join(args.out, output)) and key in timings:
            print(f"[quick start] {key}: done before ({timings[key]} s)", file=sys.stderr, flush=True)
            continue
        print(f"[quick start] {key}: vsa-tf {' '.join(arguments)}", file=sys.stderr, flush=True)
        started = time.time()
        captured = subprocess.run(executable + arguments, cwd=args.out, stdout=subprocess.PIPE, text=True)
        if captured.returncode != 0:
            raise SystemExit(f"quick start: `vsa-tf {' '.join(arguments)}` exited with {captured.returncode}")
        timings[key] = round(time.time() - started, 1)
        if arguments[0] == "caption":
            timings["caption_output"] = captured.stdout.strip()[-500:]
        with open(timings_path, "w", encoding="utf-8") as stream:
            json.dump(timings, stream, indent=1)
    print(json.dumps(summary(args.out, timings), indent=1))


def _read(out, name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def summary(out, timings):
    """The figures of the quick start's outputs."""
    retrieval = _read(out, "retrieval.json") or {}
    alignment = _read(out, "alignment.json") or {}
    captions = _read(out, "captions.json") or {}
    result = {"seconds": timings, "total_seconds": round(sum(v for v in timings.values() if isinstance(v, (int, float))), 1)}
    for direction in ("image_annotation", "image_search"):
        if direction in retrieval:
            result[f"test_{direction}"] = {key: retrieval[direction].get(key) for key in ("r1", "r5", "r10", "medr")}
    if alignment:
        result["train_snippets_phrase_accuracy"] = alignment.get("phrase_accuracy")
    if captions:
        model = captions.get("model", {})
        result["test_captions"] = {key: model.get(key) for key in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")}
        result["test_captions"].update({key: captions.get(key) for key in ("distinct_fraction", "verbatim_fraction")})
        result["nearest_neighbour_cider"] = (captions.get("nearest_neighbour") or {}).get("CIDEr")
    models = os.path.join(out, "saved_models")
    if os.path.isdir(models):
        result["exported"] = sorted(os.listdir(models))
    return result


if __name__ == "__main__":
    main()
