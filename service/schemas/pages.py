"""One named page type per list, so the OpenAPI document and generated clients read well.

List items are rows of the query language: every column by default, only those in `select`
otherwise, so they are objects rather than a fixed type (versions excepted).
"""

from __future__ import annotations

from typing import Any

from service.schemas.base import Page
from service.schemas.training import VersionOut

Row = dict[str, Any]


class ModelTypePage(Page[Row]):
    """Model types; the columns are the fields of a model type."""


class ModelPage(Page[Row]):
    """Models; the columns are the fields of a model."""


class JobPage(Page[Row]):
    """Jobs; the columns are the fields of a job."""


class VersionPage(Page[VersionOut]):
    """A model's versions, newest first."""


class DatasetPage(Page[Row]):
    """Datasets; the columns are the fields of a dataset."""


class RowPage(Page[Row]):
    """A dataset's rows (or groups, with `group_by`)."""
