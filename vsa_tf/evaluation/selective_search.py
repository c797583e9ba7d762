"""OpenCV's selective search ("fast" mode), the classic learning-free proposal baseline.

Uijlings et al. 2013 as OpenCV's contrib module `ximgproc.segmentation` implements it
(`createSelectiveSearchSegmentation` + `switchToSelectiveSearchFast`). It is an optional benchmark
dependency (`pip install "vsa_tf[bench]"`, which installs `opencv-contrib-python-headless`): nothing else
in vsa_tf needs OpenCV, so it is imported only when a selective-search baseline is asked for.

The boxes come in OpenCV's own order, which is not a score ranking (selective search has no scores);
"the first K" means the first K of that order, as the R-CNN papers and the issue's baseline use them.
That order is Uijlings et al.'s pseudo-random one: OpenCV ranks each region by its hierarchy level times
the C library's `rand()`, so the first K change from call to call unless `rand` is seeded. There is no
Python binding for that (`cv2.setRNGSeed` seeds OpenCV's own generator, which this code does not use),
so `selective_search_boxes` calls the C library's `srand` through ctypes before each image.
"""

import ctypes
import ctypes.util

import numpy as np
from PIL import Image

INSTALL_HINT = (
    "selective search needs OpenCV's contrib modules (cv2.ximgproc): "
    'pip install "vsa_tf[bench]" (opencv-contrib-python-headless)'
)


def is_available():
    """Whether OpenCV with the contrib `ximgproc` module can be imported."""
    try:
        _segmentation_module()
    except ImportError:
        return False
    return True


def _segmentation_module():
    """`cv2.ximgproc.segmentation`, or an ImportError saying what to install."""
    try:
        import cv2
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    if not hasattr(cv2, "ximgproc"):
        # opencv-python (without contrib) imports fine but lacks ximgproc.
        raise ImportError(f"{INSTALL_HINT}; the installed cv2 {cv2.__version__} has no ximgproc module")
    return cv2, cv2.ximgproc.segmentation


def _seed_c_random(seed):
    """Seeds the C library's `rand()` (process-wide); False where no C library is found (then unseeded)."""
    name = ctypes.util.find_library("c") or ctypes.util.find_library("msvcrt")
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return False
    library.srand(ctypes.c_uint(int(seed) & 0xFFFFFFFF))
    return True


def selective_search_boxes(image, max_boxes=None, mode="fast", seed=0, min_side=0):
    """Selective-search boxes of one RGB image, in OpenCV's order, in the image's own pixels.

    Args:
        image: uint8 (or 0..255 float) array [H, W, 3] in RGB order, or [H, W] grey.
        max_boxes: keep the first this many (default: all, typically several hundred to a few thousand).
        mode: "fast" (`switchToSelectiveSearchFast`, the issue's baseline) or "quality".
        seed: seeds the C `rand()` that orders the boxes (see the module docstring), so the same image gives
            the same boxes; None leaves the process's random state alone.
        min_side: drop boxes whose shorter side is below this many pixels before taking the first
            `max_boxes` (0 keeps all, the default; R-CNN-style pipelines drop boxes under about 20 px).

    Returns:
        float64 [n, 4] pixel boxes [x0, y0, x1, y1] (x1 = x0 + width), first boxes first.
    """
    cv2, segmentation = _segmentation_module()
    if mode not in ("fast", "quality"):
        raise ValueError(f"selective search mode must be 'fast' or 'quality', received {mode!r}")
    if max_boxes is not None and int(max_boxes) < 1:
        raise ValueError(f"max_boxes must be >= 1 or None, received {max_boxes!r}")
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or min(pixels.shape[:2]) < 1:
        raise ValueError(f"selective search needs an [H, W, 3] RGB image, received shape {pixels.shape}")
    bgr = np.ascontiguousarray(np.clip(pixels, 0, 255).astype(np.uint8)[..., ::-1])  # OpenCV works in BGR
    search = segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(bgr)
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    if seed is not None:
        _seed_c_random(seed)
    rectangles = np.asarray(search.process(), dtype=np.float64).reshape(-1, 4)  # (x, y, width, height)
    if min_side:
        rectangles = rectangles[rectangles[:, 2:].min(axis=1) >= float(min_side)]
    if max_boxes is not None:
        rectangles = rectangles[: int(max_boxes)]
    return np.concatenate([rectangles[:, :2], rectangles[:, :2] + rectangles[:, 2:]], axis=1)


def read_rgb(path):
    """uint8 [H, W, 3] RGB pixels of an image file (PIL, as the rest of vsa_tf's host-side code reads images)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
