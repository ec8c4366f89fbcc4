"""Images from anywhere, made into what the networks were trained on.

MNIST's digits were prepared in a known way (LeCun et al.): each written digit
was scaled to fit a 20x20 box, keeping its aspect ratio and anti-aliased to grey
levels, then placed in the 28x28 frame so that its centre of mass is the frame's
centre; ink is light on a dark background. ``to_model_input`` does the same to a
photo, a scan or a canvas drawing, so a digit drawn large and off-centre in black
on white reaches the network as the digits it learned from did.

Decoding uses Pillow (which matplotlib already brings), with limits: a file is
refused before its pixels are decoded when its header claims more than
``MAX_PIXELS`` (a decompression bomb).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnistflow.errors import MnistflowError

# Twice a 4K frame: far more than a digit needs, far less than a bomb expands to.
MAX_PIXELS = 4096 * 4096
# On a noisy background, pixels under this share of the strongest stroke are noise.
SPECK = 0.1
# Ink must stand this many grey levels above the paper's noise floor (a pale pencil
# does, by 40 and more); fainter is what is left of a shadow, not a stroke.
MIN_CONTRAST = 24
# MNIST's box for the digit inside the 28x28 frame: 20/28 of the side.
BOX_FRACTION = 20 / 28
# Uneven lighting: a border whose 5th and 95th percentiles differ by more than this
# many grey levels is a gradient (a phone photo), not a flat paper or screen; scanner
# noise spans about 20 (sigma 6). Such a picture has its large-scale background
# estimated and taken away before the ink threshold.
GRADIENT = 48
# The background estimate works on the picture shrunk to this long side, where an
# opening of LIGHTING_KERNEL pixels removes any pen stroke and keeps the lighting.
LIGHTING_SIDE, LIGHTING_KERNEL = 64, 7


class ImageError(MnistflowError):
    """An input that is not a usable image; the message names it and says why."""


def picture_pixels(data: bytes, name: str) -> int:
    """Width times height, from the picture's header alone (nothing is decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (Pillow cannot identify it as PNG, JPEG or another format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: too many pixels to decode safely (a decompression bomb)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: unreadable image ({exc})") from None
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: {width}x{height} pixels is more than the {MAX_PIXELS:,} "
                         "allowed (a decompression bomb, or far larger than a digit needs)")
    return width * height


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Greyscale pixels (H x W, uint8) of PNG, JPEG or any format Pillow reads."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse it all.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size  # from the header: nothing decoded yet
                if width * height > MAX_PIXELS:
                    raise ImageError(f"{name}: {width}x{height} pixels is more than the {MAX_PIXELS:,} "
                                     "allowed (a decompression bomb, or far larger than a digit needs)")
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    # A transparent background (a canvas export) is white paper, not black.
                    image = _on_white(image.convert("RGBA"))
                return np.asarray(image.convert("L"), dtype=np.uint8).copy()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: too many pixels to decode safely (a decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (Pillow cannot identify it as PNG, JPEG or another format)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: unreadable image ({exc})") from None


def png_bytes(pixels: np.ndarray) -> bytes:
    """Greyscale pixels (uint8) as PNG bytes: the inbox's and the quarantine's stored pictures."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def read_image(path: Path) -> np.ndarray:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(path))


def _on_white(image: Image.Image) -> Image.Image:
    paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, image)


def light_on_dark(grey: np.ndarray) -> np.ndarray:
    """Invert dark ink on light paper; MNIST's ink is light on black.

    The border decides: a digit rarely touches all four edges, so the edge
    pixels are the background.
    """
    return 255 - grey if np.median(border(grey)) > 127 else grey


def border(grey: np.ndarray) -> np.ndarray:
    return np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def ink_only(grey: np.ndarray, relit: bool = False) -> np.ndarray:
    """Light-on-dark pixels with the background taken away and the strokes at full
    strength: grey paper, scanner noise and a pale pencil become MNIST's black
    background and bright ink. MNIST's own digits (black border, ink up to 255)
    come through unchanged. ``relit``: the lighting was estimated and taken away
    (without_lighting), which leaves a grey level or two of error everywhere, even
    on a noiseless picture: specks are dropped then too, or that error is "ink"
    from edge to edge and the digit shrinks to a few pixels inside it."""
    edge = border(grey).astype(np.float32)
    median = float(np.median(edge))
    # Noise floor: the border's level plus five robust standard deviations of it
    # (at three, a 320x240 scan still has a hundred specks above it).
    floor = median + 5 * 1.4826 * float(np.median(np.abs(edge - median)))
    ink = np.clip(grey.astype(np.float32) - floor, 0, None)
    if ink.max() < MIN_CONTRAST:  # nothing stands out of the paper: no ink to stretch
        return np.zeros_like(grey, dtype=np.uint8)
    if floor > 0 or relit:  # a noisy or relit background: a lone speck just over the floor is not ink
        ink[ink < SPECK * ink.max()] = 0
    return (ink * (255.0 / ink.max())).round().astype(np.uint8)


def without_lighting(grey: np.ndarray) -> np.ndarray:
    """Light-on-dark pixels with a smooth lighting gradient taken away: the background
    is estimated as the grey opening (min, then max filter) of the picture shrunk to
    LIGHTING_SIDE, blurred and grown back, and subtracted. A flat background (MNIST's
    black, a canvas, a scan) is left as it is."""
    edge = border(grey)
    if float(np.percentile(edge, 95) - np.percentile(edge, 5)) <= GRADIENT:
        return grey
    from PIL import ImageFilter

    height, width = grey.shape
    scale = min(1.0, LIGHTING_SIDE / max(height, width))
    small = Image.fromarray(grey).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                         Image.Resampling.BOX)
    background = (small.filter(ImageFilter.MinFilter(LIGHTING_KERNEL))
                  .filter(ImageFilter.MaxFilter(LIGHTING_KERNEL))
                  .filter(ImageFilter.BoxBlur(LIGHTING_KERNEL // 2))
                  .resize((width, height), Image.Resampling.BILINEAR))
    return np.clip(grey.astype(np.int16) - np.asarray(background, dtype=np.int16), 0, 255).astype(np.uint8)


def whole_frame(grey: np.ndarray, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """The picture as a whole, light on dark, resized to ``shape`` with no crop and no
    re-centring, uint8. A 28x28 image saved larger, smaller and back, or as JPEG comes
    back nearly as it was, where ``to_model_input`` would re-crop and re-scale its
    digit: the intake gate compares these with the test set (lifecycle/gate.py)."""
    grey = light_on_dark(np.asarray(grey, dtype=np.uint8))
    if grey.shape == tuple(shape):
        return grey
    # Box filtering averages every source pixel: a k-times upscale comes back to its
    # own pixels, whatever k and whatever filter made it.
    shrinking = grey.shape[0] >= shape[0] and grey.shape[1] >= shape[1]
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(grey).resize((shape[1], shape[0]), resample), dtype=np.uint8)


def to_model_input(grey: np.ndarray, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """The image as the network's training images were: light on dark, the digit
    scaled into MNIST's box and centred by mass, float32 in [0, 1], ``shape``.

    An image with no ink comes back black; ``serving.answers`` says so instead of
    giving it a label.
    """
    light = light_on_dark(np.asarray(grey, dtype=np.uint8))
    relit = without_lighting(light)
    grey = ink_only(relit, relit is not light)  # without_lighting hands a flat picture back as it is
    height, width = shape
    frame = np.zeros(shape, dtype=np.float32)
    rows, cols = np.nonzero(grey)
    if not len(rows):
        return frame
    digit = grey[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    box = max(1, round(BOX_FRACTION * min(height, width)))
    scale = box / max(digit.shape)
    size = (max(1, round(digit.shape[1] * scale)), max(1, round(digit.shape[0] * scale)))  # (w, h)
    if size != (digit.shape[1], digit.shape[0]):
        # Box filtering averages every source pixel when shrinking: the anti-aliased
        # grey edges MNIST's digits have, not the jagged ones of nearest-neighbour.
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        digit = np.asarray(Image.fromarray(digit).resize(size, resample), dtype=np.uint8)
    ink = digit.astype(np.float32) / 255.0
    # Place the digit so that its centre of mass lands where MNIST's do: at pixel
    # (14, 14) of 28x28 (measured: 13.99 and 14.00 on average over its test set),
    # half a pixel below and right of the geometric centre.
    ys, xs = np.indices(ink.shape)
    mass = ink.sum()
    top = int(round(height / 2 - (ys * ink).sum() / mass))
    left = int(round(width / 2 - (xs * ink).sum() / mass))
    top = min(max(top, 0), height - ink.shape[0])  # never push ink out of the frame
    left = min(max(left, 0), width - ink.shape[1])
    frame[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    return frame
