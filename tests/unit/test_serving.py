"""The HTTP service: the API through FastAPI's TestClient, then a real uvicorn process,
and a promotion while requests run.

Here: the cases that run in this process and start nothing; the others are in tests/acceptance/test_serving.py.
"""

from __future__ import annotations


def test_the_documented_correction_has_exactly_the_fields_the_inbox_takes():
    from serving.inbox import FIELDS
    from serving.openapi import Correction

    assert set(Correction.model_fields) == FIELDS
