"""The split's choice and the shadow comparison, as pure functions."""

from __future__ import annotations

import uuid

import pytest

from service.domain.errors import NotFound
from service.repositories.models import Current
from service.serving.routing import bucket, pick, route
from service.serving.shadows import agreement, same


def test_pick_gives_each_version_exactly_its_weight_of_the_100_buckets() -> None:
    split = ((3, 90), (4, 7), (5, 3))
    chosen = [pick(split, at) for at in range(100)]
    assert (chosen.count(3), chosen.count(4), chosen.count(5)) == (90, 7, 3)
    assert chosen[89] == 3 and chosen[90] == 4 and chosen[97] == 5


def test_buckets_of_random_request_ids_are_spread_over_all_100() -> None:
    seen = {bucket(str(uuid.uuid4())) for _ in range(5000)}
    assert seen == set(range(100))
    assert bucket("same id") == bucket("same id")


def test_a_version_or_alias_wins_over_the_split_and_an_unknown_alias_is_not_found() -> None:
    current = Current(1, 2, True, "t", 0, {"production": 1}, ((3, 100),), (), 7)
    assert route(current, "m", 5, None, "r").version == 5
    assert route(current, "m", None, "production", "r").version == 1
    followed = route(current, "m", None, None, "r")
    assert (followed.version, followed.follows_split) == (3, True)
    assert route(Current(1, 2, True, "t"), "m", None, None, "r").version == 2
    with pytest.raises(NotFound):
        route(current, "m", None, "staging", "r")


def test_predictions_agree_when_equal_and_floats_within_a_billionth() -> None:
    assert same("setosa", "setosa") and not same("setosa", "virginica")
    assert same(1.0, 1.0 + 1e-12) and not same(1.0, 1.001)
    assert same({"a": 0.25, "b": 0.75}, {"a": 0.25, "b": 0.75 + 1e-13})
    assert not same({"a": 0.25}, {"b": 0.25})
    assert same([1.0, 2.0], [1.0, 2.0]) and not same([1.0], [1.0, 2.0])
    assert same(None, None) and not same(None, 0.0)
    assert agreement(["a", "b", "c"], ["a", "x", "c"]) == (3, 2)
