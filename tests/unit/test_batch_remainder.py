"""A training set of any size trains as well as one the batch size divides (issue 39, section 1).

The loss is a mean over the batch, so a last batch of one image took a full step
on that image alone: MNIST grown by 801 clean digits (48,801 training images)
trained for one epoch predicted "8" for every test digit. Batches are now of
near-equal sizes (tensors.batches).

Here: the cases that run in this process and start nothing; the others are in tests/acceptance/test_batch_remainder.py.
"""

from __future__ import annotations

from mnistflow.tensors import LabelledTensors, batches


def test_batches_of_near_equal_size_cover_every_image_once():
    import torch

    for n, size in ((48_000, 100), (48_801, 100), (47_950, 100), (101, 100), (7, 100), (1, 100)):
        data = LabelledTensors(torch.zeros(n, 1), torch.arange(n))
        sizes = [len(y) for _, y in batches(data, size, shuffle_seed=3)]
        seen = torch.cat([y for _, y in batches(data, size, shuffle_seed=3)])
        assert len(sizes) == -(-n // size) and max(sizes) <= size and max(sizes) - min(sizes) <= 1, (n, sizes[-3:])
        assert sorted(seen.tolist()) == list(range(n))
