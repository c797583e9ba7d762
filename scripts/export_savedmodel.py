#!/usr/bin/env python
"""Export trained runs as TF Serving SavedModels (argument parsing only; see `vsa_tf.jobs.export`).

    python scripts/export_savedmodel.py --run runs/align --caption-run runs/caption --out saved_models --version 1
    python scripts/export_savedmodel.py --run runs/align --caption-run runs/caption --proposals-run runs/proposals  # + regions from pixels
"""

import sys

from vsa_tf.cli import main

if __name__ == "__main__":
    sys.exit(main(["export"] + sys.argv[1:]))
