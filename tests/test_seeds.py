import pytest

from automem.runs.seeds import SeedError, format_seeds, parse_seeds


@pytest.mark.parametrize(
    ("text", "expected"),
    [("42", [42]), ("42-44", [42, 43, 44]), ("1,3,5-6", [1, 3, 5, 6]), ("2,2,1", [2, 1])],
)
def test_parse(text: str, expected: list[int]) -> None:
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("text", ["", "x", "-1", "5-2", "1,,2", "1.5", "99999999999"])
def test_bad(text: str) -> None:
    with pytest.raises(SeedError):
        parse_seeds(text)


@pytest.mark.parametrize(
    ("seeds", "expected"), [([42], "42"), ([12, 10, 11, 1, 3], "1, 3, 10-12"), ([5, 5, 6], "5-6"), ([], "")]
)
def test_format_is_the_inverse_of_parse(seeds: list[int], expected: str) -> None:
    assert format_seeds(seeds) == expected
    if seeds:
        assert parse_seeds(expected) == sorted(set(seeds))
