"""The HTTP service: the API through FastAPI's TestClient, then a real uvicorn process,
and a promotion while requests run.

Here: the cases that run in this process and start nothing; the others are in tests/acceptance/test_serving.py.
"""

from __future__ import annotations

import pytest


def test_a_corrections_refusal_is_its_documented_field_description():
    """One model validates a correction and documents it: the OpenAPI schema is its
    schema, and the line refusing a field is that field's description."""
    from serving.bodies import Correction, correction_from_json
    from serving.openapi import FEEDBACK

    documented = FEEDBACK["openapi_extra"]["requestBody"]["content"]["application/json"]["schema"]
    assert documented == Correction.model_json_schema()
    good = {"image": "AA==", "label": 3, "model_sha256": "0" * 64}
    assert correction_from_json(good) == Correction(image="AA==", label=3, model_sha256="0" * 64)
    for field, bad in (("image", 5), ("label", True), ("model_sha256", "z" * 64), ("predicted", "7" * 65),
                       ("predicted", 7)):
        with pytest.raises(ValueError) as refused:
            correction_from_json({**good, field: bad})
        assert str(refused.value) == f"{field}: {Correction.model_fields[field].description}"
    with pytest.raises(ValueError, match="^'colour': not a field of a correction"):
        correction_from_json({**good, "colour": "red"})
    with pytest.raises(ValueError, match="^body: a correction is a JSON object"):
        correction_from_json([good])
