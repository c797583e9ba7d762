"""Pretrained image networks converted into Keras (EfficientNet-Lite0 ImageNet weights).

- `efficientnet_lite`: builds keras-cv's EfficientNet-Lite backbone / ImageNet classifier on 0..255 pixels.
- `conversion`: maps the PyTorch state dict onto it and writes a `.weights.h5` file; a PyTorch reference.
- `imagenet`: ImageNet top-k of image files (the sanity check of a conversion).
- `region_features`: the frozen backbone + RoIAlign extractor that `vsa_tf.jobs.features` caches with.
"""
