"""Request bodies that work as sent, shown (and pre-filled) by Swagger UI.

They tell one story: create the `iris` dataset and the `iris` model, train it, predict, then
update it and predict over the dataset in a batch. `tests/http/test_openapi.py` sends each one.
"""

from __future__ import annotations

import msgspec

from service.schemas.datasets import DatasetCreate, RowsAppend
from service.schemas.inference import InferenceRequest, RequestInput, RequestOutput
from service.schemas.metadata import MetadataPatch
from service.schemas.models import ModelCreate
from service.schemas.predictions import PredictRequest
from service.schemas.training import BatchPredictRequest, DatasetQuery, Record, TrainRequest
from service.schemas.webhooks import WebhookCreate

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _flower(values: tuple[float, float, float, float], species: str | None = None) -> Record:
    record: Record = dict(zip(FEATURES, values, strict=True))
    if species is not None:
        record["species"] = species
    return record


IRIS: list[Record] = [
    _flower((5.1, 3.5, 1.4, 0.2), "setosa"),
    _flower((4.9, 3.0, 1.4, 0.2), "setosa"),
    _flower((4.7, 3.2, 1.3, 0.2), "setosa"),
    _flower((7.0, 3.2, 4.7, 1.4), "versicolor"),
    _flower((6.4, 3.2, 4.5, 1.5), "versicolor"),
    _flower((6.9, 3.1, 4.9, 1.5), "versicolor"),
    _flower((6.3, 3.3, 6.0, 2.5), "virginica"),
    _flower((5.8, 2.7, 5.1, 1.9), "virginica"),
    _flower((7.1, 3.0, 5.9, 2.1), "virginica"),
]

CREATE_MODEL = ModelCreate(
    name="iris",
    model_type="sklearn.linear_model.LogisticRegression",
    title="Iris species",
    tags=["demo"],
    settings={"max_iter": 500},
    features=FEATURES,
    target="species",
)
CHANGE_METADATA = MetadataPatch(title="Iris species", tags=["demo", "flowers"])
TRAIN = TrainRequest(data=IRIS, settings={"C": 0.5})
UPDATE = TrainRequest(data=IRIS[::2])
PREDICT = PredictRequest(
    data=[_flower((5.0, 3.4, 1.5, 0.2)), _flower((6.7, 3.0, 5.2, 2.3))], output="predict"
)
# The same two flowers over the Open Inference Protocol: one [rows, features] tensor.
INFER = InferenceRequest(
    inputs=[
        RequestInput(
            name="flowers",
            shape=[2, 4],
            datatype="FP64",
            data=msgspec.Raw(b"[5.0, 3.4, 1.5, 0.2, 6.7, 3.0, 5.2, 2.3]"),
        )
    ],
    outputs=[RequestOutput(name="predict_proba")],
)
CREATE_DATASET = DatasetCreate(name="iris", title="Iris flowers", data=IRIS)
APPEND_ROWS = RowsAppend(data=[_flower((5.9, 3.0, 5.1, 1.8), "virginica")])
BATCH_PREDICT = BatchPredictRequest(
    dataset=DatasetQuery(name="iris", select=FEATURES), output_dataset="iris_predictions"
)
# A receiver on the caller's own machine: Swagger UI's pre-fill is sent from a laptop, where
# `webhooks.allow_private = true` admits it; in production, give a public https URL.
CREATE_WEBHOOK = WebhookCreate(
    url="http://127.0.0.1:8080/models-service",
    events=["job.succeeded", "job.failed", "version.created"],
    description="Tell the team's bot about trainings",
)
