"""Wire types of the model-type catalogue."""

from __future__ import annotations

from typing import Any

from service.schemas.base import ApiStruct


class ModelTypeOut(ApiStruct):
    name: str
    task: str
    description: str
    input_description: str
    output_description: str
    update_description: str
    can_input: bool
    can_output: bool
    can_update: bool
    incremental: bool
    supervised: bool
    outputs: list[str]
    hyperparameters: dict[str, Any]
    docs_url: str
