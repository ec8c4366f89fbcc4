"""The drift check's inputs are checked before anything is computed (issue 39, section 5):
each bad window or profile is one line naming it and the field, never a traceback, and a
huge one is refused unread."""

from __future__ import annotations

import json

import pytest

from lifecycle.drift_inputs import MAX_BYTES, Window, comparable, parse, read_profile
from mnistflow.errors import MnistflowError
from mnistflow.profile import SUMMARIES

CLASSES = [str(i) for i in range(10)]


def good(size: int = 3) -> dict:
    counts = [size] + [0] * 9
    return {"size": size, "classes": CLASSES, "class_counts": counts,
            "samples": {name: [0.5] * size for name in SUMMARIES}}


@pytest.mark.parametrize("body, says", [
    (b'{"size": 500}', "classes: Field required"),
    (b"<html>", "not valid JSON"),
    (json.dumps({**good(), "class_counts": [1, 1, 1]}).encode(), "class_counts: 3 counts for 10 classes"),
    (json.dumps({**good(), "samples": {n: [float("nan")] for n in SUMMARIES}}).encode(), "every value must be a finite"),
    (json.dumps({**good(), "size": "lots"}).encode(), "size: Input should be a valid integer"),
    (b"{}", "size: Field required"),
    (json.dumps({**good(), "extra": 1}).encode(), "extra: Extra inputs are not permitted"),
    (json.dumps({**good(), "size": 2_000_000}).encode(), "size 2000000 is not the sum of class_counts"),
])
def test_a_bad_window_is_one_line_naming_the_field(body, says):
    with pytest.raises(MnistflowError, match="^w: ") as error:
        parse(Window, body, "w")
    assert says in str(error.value) and "\n" not in str(error.value)


def test_a_huge_window_is_refused_unread_and_another_models_is_named():
    with pytest.raises(MnistflowError, match=f"over {MAX_BYTES:,} bytes"):
        parse(Window, b" " * (MAX_BYTES + 1), "w")
    window = parse(Window, json.dumps({**good(), "classes": list("abcdefghij")}).encode(), "w")
    with pytest.raises(MnistflowError, match="another model's window"):
        comparable(good(), window, "w")


def test_a_bad_profile_file_is_one_line(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text("{}")
    with pytest.raises(MnistflowError, match=r"profile.json: size: Field required \(not a drift profile\)"):
        read_profile(path)
    path.write_text(json.dumps(good()))
    assert read_profile(path)["size"] == 3
