"""Try a trained model on images: ``python -m serving.predict [--model PATH] IMAGE...``

Each IMAGE is a PNG, a JPEG (any size, any colours) or an IDX file of images
(``*-idx3-ubyte``, gzipped or not, of any length: it is read a chunk at a time;
serving.inputs checks every input before any answer). Pictures are prepared as MNIST's digits
were (``pictures.imaging``): grey, light on dark, scaled into a 20x20 box and
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
from typing import Any, Iterator

import numpy as np

from mnistflow.entry import run_main, setup_logging
from mnistflow.errors import MnistflowError
from mnistflow.paths import DEFAULT_RUN_DIR, RunPaths, roots
from lifecycle.registry_paths import RegistryPaths

from .answers import answers
from .inputs import CHUNK, Input, check_input, idx_chunks, shown


def predictions(predictor, images: list[Path]) -> Iterator[dict[str, Any]]:
    """An answer per image, in order, as they come: every input is checked first
    (serving.inputs), so a bad one is one line before any answer; an IDX file then
    streams, a chunk at a time."""
    inputs = [check_input(path, predictor.input_shape) for path in images]
    pictures: list[Input] = []

    def flush() -> Iterator[dict[str, Any]]:
        if pictures:
            pixels = np.stack([item.picture for item in pictures])
            yield from ({"image": item.name, **answer} for item, answer in zip(pictures, answers(predictor, pixels)))
            pictures.clear()

    for item in inputs:
        if item.picture is not None:
            pictures.append(item)
            if len(pictures) == CHUNK:
                yield from flush()
            continue
        yield from flush()
        first = 0
        for pixels in idx_chunks(item, predictor.input_shape):
            for i, answer in enumerate(answers(predictor, pixels), first):
                yield {"image": f"{item.name}[{i}]", **answer}
            first += len(pixels)
    yield from flush()


def print_text(results: Iterator[dict[str, Any]]) -> None:
    for result in results:
        if result["blank"]:
            print(f"{shown(result['image'])}: {result['reason']}")
            continue
        top = "  ".join(f"{t['label']} {100 * t['probability']:5.1f}%" for t in result["top"])
        print(f"{shown(result['image'])}: {result['label']}    ({top})")


def print_json(model: Path, results: Iterator[dict[str, Any]]) -> None:
    """One JSON document, written as the answers come (a million of them never sit in memory)."""
    first = next(results, None)  # the first answer before any output: most errors come before it
    sys.stdout.write(f'{{"model": {json.dumps(str(model))}, "predictions": [')
    if first is not None:
        sys.stdout.write("\n  " + json.dumps(first))
        for result in results:
            sys.stdout.write(",\n  " + json.dumps(result))
    sys.stdout.write("\n]}\n")


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
        from mnistflow.inference import Predictor

        predictor = Predictor.load(model)
        if files.why:  # said once the model loads: a bad file is then one line, nothing before it
            logging.getLogger("mnistflow").info("%s", files.why)
        results = predictions(predictor, args.images)
        print_json(model, results) if args.json else print_text(results)

    run_main(run)


if __name__ == "__main__":
    main()
