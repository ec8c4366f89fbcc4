"""download, split, device tensors and device selection on small generated IDX data."""

import gzip

import numpy as np
import pytest
import torch

from mnistflow.datasets import FILE_NAMES
from mnistflow.device import DeviceChoice, configure_runtime, select_device
from mnistflow.download import download
from mnistflow.errors import MnistflowError
from mnistflow.idx import encode_idx, parse_idx, read_idx
from mnistflow.mirrors import mirror_list
from mnistflow.params import validate
from mnistflow.split import make_split, read_split, split_indices
from mnistflow.tensors import batches, load_device_data, random_shift
from tests.helpers import custom_dir, tiny_params


def test_idx_round_trip_and_bad_files(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    raw = encode_idx(images)
    assert np.array_equal(parse_idx(tmp_path, raw, 3), images)
    with pytest.raises(MnistflowError, match="wrong magic number"):
        parse_idx(tmp_path / "x", b"\x00\x00\x08\x01" + raw[4:], 3)
    with pytest.raises(MnistflowError, match="wrong length"):
        parse_idx(tmp_path / "x", raw[:-5], 3)
    truncated = tmp_path / "t.gz"
    truncated.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(MnistflowError, match="t.gz: not a complete gzip file"):
        read_idx(truncated, 3)
    plain = tmp_path / "plain-idx3-ubyte"
    plain.write_bytes(raw)
    assert np.array_equal(read_idx(plain, 3), images)


def test_download_from_a_directory_then_never_again(workdir, params, dataset):
    files = download(params.data, workdir / "data")
    for key, path in files.paths.items():
        # stored uncompressed: the same bytes whichever mirror (and compressor) served them
        assert (workdir / path).read_bytes() == gzip.decompress((dataset[0] / FILE_NAMES[key]).read_bytes())
    assert files.md5 == dataset[1]
    # A file that verifies is not fetched again: with the mirror gone, it still works.
    for f in dataset[0].iterdir():
        f.unlink()
    assert download(params.data, workdir / "data").digest == files.digest


def test_download_replaces_a_local_file_that_does_not_verify(workdir, params, dataset):
    files = download(params.data, workdir / "data")
    target = workdir / files.paths["train-labels"]
    target.write_bytes(b"garbage")
    download(params.data, workdir / "data")
    assert target.read_bytes() == gzip.decompress((dataset[0] / FILE_NAMES["train-labels"]).read_bytes())


def test_recompressed_copy_verifies_corrupt_copy_does_not(workdir, dataset, tmp_path):
    directory, checksums = dataset
    recompressed = tmp_path / "recompressed"
    recompressed.mkdir()
    for name in FILE_NAMES.values():
        (recompressed / name).write_bytes(gzip.compress(gzip.decompress((directory / name).read_bytes()), 1))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in FILE_NAMES.values():
        raw = bytearray(gzip.decompress((directory / name).read_bytes()))
        raw[-1] ^= 0xFF  # one flipped pixel: a valid gzip of the wrong content
        (corrupt / name).write_bytes(gzip.compress(bytes(raw)))
    p = validate(tiny_params(corrupt, checksums, data={"mirrors": [str(corrupt), str(recompressed)]}))
    files = download(p.data, workdir / "data", backoff=0)
    assert files.md5 == checksums


def test_every_mirror_failing_names_each_and_leaves_nothing(workdir, dataset, tmp_path):
    p = validate(tiny_params(tmp_path / "nowhere", dataset[1],
                             data={"mirrors": [str(tmp_path / "nowhere"), "http://127.0.0.1:9/"]}))
    with pytest.raises(MnistflowError) as info:
        download(p.data, workdir / "data", retries=1, backoff=0)
    message = str(info.value)
    assert "nowhere (no such directory" in message and "http://127.0.0.1:9/ (" in message
    assert "MNISTFLOW_MIRROR" in message and "\n" not in message
    leftovers = [p for p in (workdir / "data").rglob("*") if p.is_file()]
    assert leftovers == []


def test_env_mirror_is_tried_first_for_a_named_dataset_and_never_for_a_custom_one(params):
    mnist = validate({}).data
    assert mirror_list(mnist, {"MNISTFLOW_MIRROR": "/srv/mnist"})[0] == "/srv/mnist"
    assert mirror_list(mnist, {})[0].startswith("https://ossci-datasets.s3")
    # a custom dataset comes from its own data.mirrors only, whatever the machine-wide settings
    env = {"MNISTFLOW_MIRROR": "/srv/mnist", "MNISTFLOW_MIRROR_ROOT": "/srv/datasets"}
    assert mirror_list(params.data, env) == list(params.data.mirrors)


def test_one_mirror_root_serves_every_named_dataset_first():
    root = {"MNISTFLOW_MIRROR_ROOT": "/srv/datasets/"}
    for dataset in ("mnist", "fashion-mnist", "kmnist"):
        data = validate({"data": {"dataset": dataset}}).data
        mirrors = mirror_list(data, root)
        assert mirrors[0] == f"/srv/datasets/{dataset}" and len(mirrors) > 1  # then the published ones
    fashion = validate({"data": {"dataset": "fashion-mnist"}}).data
    assert mirror_list(fashion, {"MNISTFLOW_MIRROR_ROOT": "https://example.org/data"})[0] == \
        "https://example.org/data/fashion-mnist/"
    # with both set: the dataset's own folder, then the one-dataset form
    assert mirror_list(fashion, {**root, "MNISTFLOW_MIRROR": "/srv/mnist"})[:2] == [
        "/srv/datasets/fashion-mnist", "/srv/mnist"]


def test_split_is_seeded_disjoint_and_recorded(workdir, params):
    train, val = split_indices(100, 0.2, seed=7)
    assert len(val) == 20 and not set(train) & set(val) and len(set(train) | set(val)) == 100
    assert np.array_equal(split_indices(100, 0.2, seed=7)[1], val)
    assert not np.array_equal(split_indices(100, 0.2, seed=8)[1], val)
    with pytest.raises(MnistflowError, match="data.val_fraction"):
        split_indices(3, 0.01, seed=0)
    files = download(params.data, workdir / "data")
    path = make_split(files, params.data, workdir / "outputs/split.json")
    train_idx, val_idx, record = read_split(path, files)
    assert record["val_size"] == 120 and len(train_idx) == 480 and record["seed"] == 0


def test_device_tensors_are_scaled_and_shuffled_by_seed(workdir, params):
    files = download(params.data, workdir / "data")
    split = make_split(files, params.data, workdir / "outputs/split.json")
    splits = load_device_data(files, split, torch.device("cpu"))
    assert splits.train.x.shape == (480, 784) and splits.train.x.dtype == torch.float32
    assert 0.0 <= splits.train.x.min() and splits.train.x.max() <= 1.0
    first = [y for _, y in batches(splits.train, 100, shuffle_seed=1)]
    again = [y for _, y in batches(splits.train, 100, shuffle_seed=1)]
    other = [y for _, y in batches(splits.train, 100, shuffle_seed=2)]
    assert [len(b) for b in first] == [96, 96, 96, 96, 96]  # 480 in 5 batches of near-equal size, not 4 x 100 + 80
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(torch.cat(first), torch.cat(other))
    assert torch.equal(torch.cat(first).sort().values, splits.train.y.sort().values)
    normalized = load_device_data(files, split, torch.device("cpu"), normalize=True)
    assert abs(float(normalized.train.x.mean())) < 1e-3


def test_random_shift_moves_pixels_and_keeps_shape():
    x = torch.zeros(4, 784)
    x.view(4, 28, 28)[:, 14, 14] = 1.0
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and torch.all(shifted.sum(1) == 1.0)
    positions = shifted.view(4, 28, 28).nonzero()[:, 1:]
    assert torch.all((positions - 14).abs() <= 2)


def test_device_selection():
    assert select_device("cpu") == DeviceChoice("cpu", "requested")
    with pytest.raises(MnistflowError, match="device: unknown device 'tpu'"):
        select_device("tpu")
    choice = select_device("auto")
    assert choice.reason.startswith("auto")
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        free = [torch.cuda.mem_get_info(i)[0] for i in range(count)]
        # auto picks the visible GPU with the most free memory, and says which it is
        assert choice.name == f"cuda:{max(range(count), key=lambda i: free[i])}"
        assert torch.cuda.get_device_name(choice.torch.index) in choice.reason
        assert select_device("cuda").name == "cuda:0"
        with pytest.raises(MnistflowError, match=f"only {count} CUDA device"):
            select_device(f"cuda:{count}")
    else:
        assert choice.name in ("cpu", "mps")
        assert choice.reason in ("auto: no CUDA or MPS device available", "auto: MPS available, no CUDA")
        for request in ("cuda", "cuda:1"):
            with pytest.raises(MnistflowError, match=f"device: {request} requested but no CUDA device"):
                select_device(request)


def test_the_runtime_carries_the_one_device_choice_and_its_precision():
    cpu = DeviceChoice("cpu", "requested")
    runtime = configure_runtime(cpu, threads=1, precision="bf16")
    assert runtime.device is cpu and runtime.torch == torch.device("cpu")
    assert torch.get_num_threads() == 1
    # bf16 autocast is a CUDA choice: asked for on a CPU, the run computes in float32
    assert runtime.autocast_bf16 is False
    assert runtime.determinism() == {"threads": 1, "deterministic_algorithms": False}


def test_the_tracked_manifest_is_the_same_on_every_machine_and_the_stamps_live_outside(tmp_path, params):
    """checksums.json (inside the DVC-tracked folder) holds md5s only; the files' sizes
    and times, which differ on every clone, are a cache beside the folder."""
    import json
    import os

    from mnistflow.dataset_files import locate

    one, two = download(params.data, tmp_path / "one"), download(params.data, tmp_path / "two")
    for name in FILE_NAMES.values():  # another clone: the same bytes, other times
        os.utime(custom_dir(tmp_path / "two") / name.removesuffix(".gz"), ns=(1, 1))
    locate(params.data, tmp_path / "two")  # hashed again, and stamped anew
    manifests = [(custom_dir(tmp_path / root) / "checksums.json").read_bytes() for root in ("one", "two")]
    assert manifests[0] == manifests[1] and json.loads(manifests[0]) == one.md5 == two.md5
    assert sorted(p.name for p in custom_dir(tmp_path / "one").iterdir()) == sorted(
        ["checksums.json", *(n.removesuffix(".gz") for n in FILE_NAMES.values())])
    stamps = json.loads((tmp_path / "two" / ".stamps" / f"custom-{custom_dir(tmp_path / 'two').name}.json").read_text())
    assert {entry["mtime_ns"] for entry in stamps.values()} == {1}


def test_an_older_manifest_with_times_is_rewritten_with_md5s_only(workdir, params):
    import json

    files = download(params.data, workdir / "data")
    manifest = custom_dir(workdir / "data") / "checksums.json"
    manifest.write_text(json.dumps({k: {"md5": v, "size": 1, "mtime_ns": 2} for k, v in files.md5.items()}))
    assert download(params.data, workdir / "data").digest == files.digest
    assert json.loads(manifest.read_text()) == files.md5
