"""Try a trained model on images: ``python -m serving.predict [--model PATH] IMAGE...``

Each IMAGE is a PNG, a JPEG (any size, any colours) or an IDX file of images
(``*-idx3-ubyte``, gzipped or not). Pictures are prepared as MNIST's digits
were (``serving.imaging``): grey, light on dark, scaled into a 20x20 box and
centred by mass in the frame. IDX images are in that form already and go in as
they are. For each image it prints the label and the top 3 probabilities; with
``--json``, one JSON document.

The model defaults to the champion (``registry/champion/model.pt``, or under
$MNISTFLOW_REGISTRY) when there is one, otherwise the run's ``outputs/model.pt``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mnistflow.entry import run_main, setup_logging
from mnistflow.errors import MnistflowError
from mnistflow.idx import gunzip, parse_idx
from mnistflow.paths import DEFAULT_RUN_DIR, RegistryPaths, RunPaths, roots

from .answers import answers
from .imaging import read_image, to_model_input

IDX_IMAGES_MAGIC = bytes([0, 0, 0x08, 0x03])


def load_inputs(path: Path, shape: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """(name, pixels in [0, 1]) for each image the file holds."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise MnistflowError(f"{path}: cannot read ({exc.strerror or exc})") from None
    raw = gunzip(path, blob) if blob[:2] == b"\x1f\x8b" else blob
    if raw[:4] == IDX_IMAGES_MAGIC:
        images = parse_idx(path, raw, 3)
        if tuple(images.shape[1:]) != shape:
            raise MnistflowError(f"{path}: {images.shape[1]}x{images.shape[2]} images; the model takes "
                                 f"{shape[0]}x{shape[1]}")
        return [(f"{path}[{i}]", image.astype(np.float32) / 255.0) for i, image in enumerate(images)]
    return [(str(path), to_model_input(read_image(path), shape))]


def predict_files(model_path: Path, images: list[Path], why: str = "") -> list[dict[str, Any]]:
    from mnistflow.inference import Predictor

    predictor = Predictor.load(model_path)
    if why:  # said once the model loads: a bad file is then one line, nothing before it
        logging.getLogger("mnistflow").info("%s", why)
    named = [item for path in images for item in load_inputs(path, predictor.input_shape)]
    pixels = np.stack([pixels for _, pixels in named])
    return [{"image": name, **answer} for (name, _), answer in zip(named, answers(predictor, pixels))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--model", type=Path, default=None,
                        help="a model.pt (default: the champion, else outputs/model.pt)")
    parser.add_argument("--registry", type=Path, default=None,
                        help="where the champion lives (default: $MNISTFLOW_REGISTRY or registry/)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    args = parser.parse_args(argv)

    def run() -> None:
        from .model_file import choose_model

        setup_logging(logging.WARNING if args.json else logging.INFO)
        files = choose_model(args.model, RegistryPaths(roots(registry=args.registry).registry),
                             RunPaths(DEFAULT_RUN_DIR))
        model = files.model
        if args.model is None and not model.exists():
            raise MnistflowError(f"no model to predict with: no champion in {model.parent.parent} and no "
                                 f"{DEFAULT_RUN_DIR / 'model.pt'}; train one (make run) or pass --model")
        results = predict_files(model, args.images, files.why)
        if args.json:
            json.dump({"model": str(model), "predictions": results}, sys.stdout, indent=2)
            print()
            return
        for result in results:
            if result["blank"]:
                print(f"{result['image']}: {result['reason']}")
                continue
            top = "  ".join(f"{t['label']} {100 * t['probability']:5.1f}%" for t in result["top"])
            print(f"{result['image']}: {result['label']}    ({top})")

    run_main(run)


if __name__ == "__main__":
    main()
