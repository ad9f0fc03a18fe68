"""`--seeds`: what a sweep's seeds may be written as, and what is refused by name."""

from __future__ import annotations

import pytest

from actors.experiments.seeds import MAX_SEEDS, format_seeds, parse_seeds
from actors.experiments.sweep_errors import InvalidSeeds


def test_a_range_a_seed_and_a_list_name_their_seeds_in_order():
    assert parse_seeds("1-5") == (1, 2, 3, 4, 5)
    assert parse_seeds("7") == (7,)
    assert parse_seeds("30-32, 20,1-2") == (1, 2, 20, 30, 31, 32)


def test_seeds_are_written_back_in_the_same_shorthand():
    assert format_seeds([5, 1, 2, 3, 7, 8]) == "1-3,5,7-8"
    assert format_seeds(parse_seeds("1-1000,2000")) == "1-1000,2000"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1-", "neither a seed"),
        ("abc", "neither a seed"),
        ("-3", "neither a seed"),
        ("", "write seeds as"),
        ("1,,2", "write seeds as"),
        ("5-1", "runs backwards"),
        ("0", "count from 1"),
        ("0-10", "count from 1"),
        ("1-3,2", "seed 2 is named twice"),
        (f"1-{MAX_SEEDS + 1}", "a sweep runs at most"),
        ("9" * 5000, "larger than the largest seed"),
    ],
)
def test_a_malformed_or_absurd_seed_list_is_refused_by_name(text, says):
    with pytest.raises(InvalidSeeds, match=says) as caught:
        parse_seeds(text)
    assert str(caught.value).startswith("InvalidSeeds - --seeds ")
