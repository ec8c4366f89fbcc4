"""params.yaml, validated in one place.

Every field has the recipe's default, so an empty params.yaml reproduces the
original run. Unknown keys are errors (a typo must not silently fall back to a
default), and every bad value is named in one line.
"""

from __future__ import annotations

import hashlib
import json
import re
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import MnistflowError
from .yaml_file import read_yaml

FILE_KEYS = ("train-images", "train-labels", "test-images", "test-labels")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


# The params digest, field by field. Every field of Params is in exactly one of
# these three (tests/unit/test_params.py fails on a field left out, so a new one is a
# decision, never an accident that changes every digest):
# - DIGESTED: can change the trained weights; always in the digest.
# - DIGESTED_UNLESS_DEFAULT: added after runs were made; in the digest only away
#   from the default every earlier run had, so those runs' digests (their
#   checkpoints, their champions' fingerprints) still stand.
# - NOT_DIGESTED: cannot change the weights (where the files come from, plots,
#   which device runs the same computation).
DIGESTED = (
    "data.dataset", "data.val_fraction", "data.seed", "data.checksums", "data.normalize",
    "model.kind", "model.hidden", "model.activation", "model.dropout", "model.max_norm", "model.channels",
    "model.kernels", "model.batch_norm",
    "train.batch_size", "train.optimizer.name", "train.optimizer.momentum", "train.optimizer.nesterov",
    "train.optimizer.weight_decay", "train.optimizer.betas", "train.stages", "train.augment.max_shift",
    "train.seed", "train.threads", "train.precision", "train.compile",
)
DIGESTED_UNLESS_DEFAULT: dict[str, Any] = {"model.padding": "valid", "model.convs_per_block": 1,
                                           "train.augment.flip": False, "train.init": "scratch",
                                           "train.label_smoothing": 0.0, "train.ema": None, "model.test_flip": False,
                                           "train.warm_stages": [{"epochs": 2, "lr": 0.1, "schedule": "constant"}]}
NOT_DIGESTED = ("data.mirrors", "device", "plot.dpi", "plot.width", "plot.height")


# Bounds on what a run may ask for: within what torch, numpy and matplotlib accept,
# and far past any useful run (docs/parameters.md). Every float must be finite.
MAX_SEED = 2**63 - 1  # torch.manual_seed takes 64 bits; epoch seeds are taken mod 2**63
MAX_WIDTH = 1 << 16   # units of a hidden layer, channels of a convolution
MAX_LAYERS = 32
MAX_EPOCHS = 10_000   # of all stages together
MAX_STAGES = 100


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataParams(_Section):
    # custom: an MNIST-format dataset of your own; give its mirrors and checksums.
    dataset: Literal["mnist", "fashion-mnist", "kmnist", "custom"] = "mnist"
    # None means the dataset's published mirrors (torchvision's list for MNIST).
    mirrors: list[str] | None = None
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # md5 of each *uncompressed* file, replacing the published ones: for a
    # private copy or a custom dataset. Keys: train-images, train-labels,
    # test-images, test-labels.
    checksums: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]] | None = None
    # Subtract the dataset mean / divide by std once, when the tensors are built.
    normalize: bool = False

    @field_validator("mirrors")
    @classmethod
    def _mirrors(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must list at least one mirror (or be omitted for the defaults)")
        for mirror in value:
            if not mirror.strip():
                raise ValueError("a mirror is an empty string")
            scheme = mirror.split("://", 1)[0] if "://" in mirror else ""
            if scheme and scheme not in ("http", "https", "file"):
                raise ValueError(f"{mirror!r} is neither an http(s) URL nor a local directory")
        return value

    @field_validator("checksums")
    @classmethod
    def _checksums(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and set(value) != set(FILE_KEYS):
            raise ValueError(f"must give exactly the keys {', '.join(FILE_KEYS)}")
        return value

    @model_validator(mode="after")
    def _custom_needs_sources(self) -> "DataParams":
        if self.dataset == "custom" and (self.checksums is None or self.mirrors is None):
            raise ValueError("dataset custom needs both mirrors and checksums")
        return self


# Images per forward pass when evaluating (mnistflow.evaluate; preflight's memory estimate).
EVALUATION_CHUNK = 1000


def cnn_sizes(shape: tuple[int, int], kernels: list[int], padding: str = "valid",
              convs: int = 1) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """For each convolution block, (the size it gets, the size its convolutions make).

    Each block is ``convs`` convolutions (a "valid" one shrinks the side by
    kernel - 1, a "same" one keeps it) and a 2x2 max-pool (the side halves), as
    ``models.cnn`` builds it; the next block gets the pooled size. Sizes can
    reach zero or below: ``cnn_shape_problem`` says why.
    """
    sizes, (height, width) = [], shape
    shrink = 0 if padding == "same" else convs
    for kernel in kernels:
        made = (height - shrink * (kernel - 1), width - shrink * (kernel - 1))
        sizes.append(((height, width), made))
        height, width = made[0] // 2, made[1] // 2
    return sizes


def cnn_shape_problem(shape: tuple[int, int], channels: list[int], kernels: list[int],
                      padding: str = "valid", convs: int = 1) -> str | None:
    """Why these convolution blocks do not fit an image of ``shape``, or None."""
    if len(kernels) != len(channels):
        return (f"model.kernels: {len(kernels)} kernel sizes for {len(channels)} convolutions "
                f"(model.channels {channels}); give one per convolution")
    sizes = cnn_sizes(shape, kernels, padding, convs)
    for block, (kernel, ((height, width), made)) in enumerate(zip(kernels, sizes), 1):
        for _ in range(convs):  # each valid convolution of the block shrinks what the next one gets
            if kernel > min(height, width):
                return (f"model.kernels: kernel {kernel} of convolution {block} is larger than the "
                        f"{height}x{width} image it gets (the input is {shape[0]}x{shape[1]})")
            if padding == "valid":
                height, width = height - kernel + 1, width - kernel + 1
        if min(made) // 2 < 1:
            return (f"model.channels: convolution {block} of {len(kernels)} leaves nothing after its 2x2 "
                    f"pooling of a {shape[0]}x{shape[1]} input; use fewer convolutions or smaller kernels")
    return None


class ModelParams(_Section):
    # mlp: the recipe's fully connected network. cnn: convolution blocks
    # (conv -> batch norm if on -> activation -> 2x2 max-pool), then the same
    # fully connected layers as the mlp.
    kind: Literal["mlp", "cnn"] = "mlp"
    # Widths of the fully connected hidden layers (for a cnn, after the convolutions).
    hidden: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field([32], max_length=MAX_LAYERS)
    activation: Literal["relu", "tanh", "gelu", "sigmoid", "leaky_relu"] = "relu"
    # Dropout after each fully connected hidden layer.
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # Renormalise each hidden unit's incoming weights to at most this L2 norm after
    # every step (Srivastava et al. 2014); None disables it.
    max_norm: float | None = Field(None, gt=0.0, le=1e6)
    # cnn only: output channels and (square) kernel size of each convolution.
    channels: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(default_factory=lambda: [24, 32], min_length=1,
                                                                      max_length=MAX_LAYERS)
    kernels: list[Annotated[int, Field(ge=1, le=64)]] = Field(default_factory=lambda: [5, 3], min_length=1,
                                                              max_length=MAX_LAYERS)
    batch_norm: bool = False
    # cnn only: "valid" convolutions shrink the image and are about twice as fast
    # (MNIST's digits leave the border empty); "same" ones zero-pad to keep the
    # frame's edges, which Fashion-MNIST's garments fill.
    padding: Literal["valid", "same"] = "valid"
    # cnn only: convolutions per block before its pooling (2: VGG's pairs, which see
    # 5x5 through two 3x3s at less cost, and learn more per block).
    convs_per_block: int = Field(1, ge=1, le=3)
    # cnn only: at test time (never in training) also classify each image mirrored
    # left to right and average the two answers' logits. For garments, not digits.
    test_flip: bool = False


class OptimizerParams(_Section):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0, le=10.0)
    # adam and adamw: the decay rates of the gradient's running mean and square.
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = (0.9, 0.999)


class StageParams(_Section):
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    lr: float = Field(gt=0.0)
    # constant: the recipe. onecycle: warm up to lr then anneal, per batch.
    schedule: Literal["constant", "onecycle", "cosine"] = "constant"


class AugmentParams(_Section):
    # Random translation by up to this many pixels, done on the batch tensor.
    max_shift: int = Field(0, ge=0, le=8)
    # Mirror left to right, half the images: for Fashion-MNIST's garments and shoes,
    # never for digits or characters (a mirrored 2 is no 2).
    flip: bool = False


class TrainParams(_Section):
    batch_size: int = Field(100, ge=1, le=1 << 20)
    optimizer: OptimizerParams = OptimizerParams()
    stages: list[StageParams] = Field(
        default_factory=lambda: [StageParams(epochs=5, lr=0.5), StageParams(epochs=5, lr=0.1)],
        min_length=1, max_length=MAX_STAGES,
    )
    augment: AugmentParams = AugmentParams()
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # Spread this much of each target's probability over all classes (Szegedy et al. 2016).
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    # Validate and keep an exponential moving average of the weights, of this decay
    # (0.99 to 0.9999; ramped up from 0.1 over the first steps); None: the weights as trained.
    ema: float | None = Field(None, gt=0.0, lt=1.0)
    # Pinned because float reductions depend on the thread count: the flow and
    # `dvc repro` must produce byte-identical outputs. One thread is also the
    # fastest for a 784-32-10 MLP on a small CPU (see bench/).
    threads: int = Field(1, ge=1, le=1024)
    # CUDA only (ignored elsewhere): bf16 autocast for the forward pass.
    precision: Literal["float32", "bf16"] = "float32"
    # torch.compile the network: pays off only for long runs (docs/performance.md).
    # reduce-overhead: on CUDA, also replay each step's kernels as a CUDA graph (small
    # batches are launch-bound there); elsewhere the same as true.
    compile: bool | Literal["reduce-overhead"] = False
    # How this run starts. Never a params file's choice: a file says scratch (a new
    # network from train.seed, for train.stages), so `dvc repro` always reproduces
    # it. "champion" is set by the retrain flow alone, when asked to warm-start
    # (Params.warm_started): it fine-tunes the champion for train.warm_stages.
    init: Literal["scratch", "champion"] = "scratch"
    warm_stages: list[StageParams] = Field(default_factory=lambda: [StageParams(epochs=2, lr=0.1)], min_length=1,
                                           max_length=MAX_STAGES)

    @field_validator("init")
    @classmethod
    def _scratch_in_files(cls, init: str) -> str:
        if init != "scratch":
            raise ValueError(f"{init!r}: warm starting is retraining's choice, not a param (leave train.init out): "
                             "`python -m flows.retrain --warm-start`, or the retrain deployment's warm_start "
                             "(on for runs that added data start)")
        return init

    @model_validator(mode="after")
    def _bounded_epochs(self) -> "TrainParams":
        for name, stages in (("stages", self.stages), ("warm_stages", self.warm_stages)):
            if sum(s.epochs for s in stages) > MAX_EPOCHS:
                raise ValueError(f"{name}: {sum(s.epochs for s in stages):,} epochs in all; "
                                 f"at most {MAX_EPOCHS:,}")
        return self

    @property
    def run_stages(self) -> list[StageParams]:
        """The stages this run trains."""
        return self.warm_stages if self.init == "champion" else self.stages


class PlotParams(_Section):
    dpi: int = Field(100, ge=20, le=600)
    # Inches; matplotlib refuses a figure of 2**16 pixels a side or more.
    width: float = Field(10.0, gt=0.0, le=100.0)
    height: float = Field(4.0, gt=0.0, le=100.0)

    @model_validator(mode="after")
    def _drawable(self) -> "PlotParams":
        if max(self.width, self.height) * self.dpi >= 1 << 15:
            raise ValueError(f"{self.width:g} x {self.height:g} inches at {self.dpi} dpi is over 32,768 "
                             "pixels a side; make it smaller")
        return self


class Params(_Section):
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    device: str = "auto"
    plot: PlotParams = PlotParams()

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return value

    @model_validator(mode="after")
    def _cnn_fits(self) -> "Params":
        # The named datasets are all 28x28; a custom one is checked against its
        # IDX headers once downloaded, before its split (mnistflow.preflight.check_network_fits).
        if self.model.kind == "cnn" and self.data.dataset != "custom":
            problem = cnn_shape_problem((28, 28), list(self.model.channels), list(self.model.kernels),
                                        self.model.padding, self.model.convs_per_block)
            if problem:
                raise ValueError(problem)
        return self

    def warm_started(self) -> "Params":
        """These params, fine-tuning the champion for train.warm_stages: the retrain flow's
        choice (its warm_start), which a params file cannot make (TrainParams.init)."""
        return self.model_copy(update={"train": self.train.model_copy(update={"init": "champion"})})

    def digest(self) -> str:
        """The params digest: what a checkpoint must match to be resumed from, and
        what a retrain compares with its champion's (DIGESTED and the rest, above)."""
        dumped, digested = self.model_dump(mode="json"), {}
        fields = [*DIGESTED, *(f for f, default in DIGESTED_UNLESS_DEFAULT.items() if _at(dumped, f) != default
                               # warm stages change nothing in a run from scratch
                               and not (f == "train.warm_stages" and self.train.init == "scratch"))]
        for field in fields:
            *parents, leaf = field.split(".")
            node = digested
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = _at(dumped, field)
        blob = json.dumps(digested, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def _at(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def leaf_fields(model: type[BaseModel] = None, prefix: str = "") -> list[str]:
    """Every field of Params as a dotted path, sections walked down to their values."""
    model = model or Params
    leaves = []
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            leaves += leaf_fields(kind, f"{prefix}{name}.")
        else:
            leaves.append(f"{prefix}{name}")
    return leaves


# What an error message quotes of a bad value: enough to recognise it, never the
# whole of a huge (or alias-shared, exponentially large) input.
_QUOTE = reprlib.Repr()
for _limit, _value in dict(maxlevel=2, maxlist=4, maxtuple=4, maxdict=4, maxset=4, maxstring=60, maxlong=40,
                           maxother=60).items():
    setattr(_QUOTE, _limit, _value)
MAX_PROBLEMS = 5


def quote(value: Any) -> str:
    """A short repr of any value (a user's input in an error message)."""
    try:
        return _QUOTE.repr(value)[:120]
    except Exception:  # noqa: BLE001  an int past Python's digit limit, an odd repr
        return f"a {type(value).__name__}"


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")[:300]
    if not where:  # a check across sections names its own fields
        return message
    if error["type"] == "extra_forbidden":
        return f"{where[:120]}: unknown key"
    if error["type"] == "missing":
        return f"{where}: required"
    return f"{where[:120]}: {message} (got {quote(error['input'])})"


def describe_all(errors: list[dict[str, Any]]) -> str:
    """Every problem, in one line; past MAX_PROBLEMS, how many more."""
    shown = "; ".join(_describe(e) for e in errors[:MAX_PROBLEMS])
    more = len(errors) - MAX_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")


def validate(raw: Any, source: str = "params") -> Params:
    """Validate plain data into Params; one line names every bad value."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise MnistflowError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise MnistflowError(f"{source}: {describe_all(exc.errors(include_url=False))}") from None
    except RecursionError:
        raise MnistflowError(f"{source}: nested too deeply to be params") from None



def load_params(path: str | Path = "params.yaml") -> Params:
    return validate(read_yaml(path, "params file"), str(path))


def main() -> None:
    """``python -m mnistflow.params [FILE]``: validate a params file and print it as
    the JSON a deployment run takes (``prefect deployment run ... --params "$(...)"``)."""
    import sys

    from .entry import run_main

    path = sys.argv[1] if len(sys.argv) > 1 else "params.yaml"
    run_main(lambda: print(json.dumps({"params": load_params(path).model_dump(mode="json")})))


if __name__ == "__main__":
    main()
