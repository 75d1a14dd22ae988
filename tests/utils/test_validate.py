"""Parsed JSON and YAML checked in one place: one line naming the field and what it holds."""

from __future__ import annotations

import pytest

from fcnseg.utils.validate import describe, expect_mapping, fields_of


def test_expect_mapping_gives_the_mapping_back() -> None:
    data = {"classes": ["bg", "car"]}
    assert expect_mapping(data, "dataset.yaml") is data


@pytest.mark.parametrize(("value", "got"), [
    ([1, 2], "a list"), (5, "a number"), ("x", "a string"), (None, "null"), (True, "a boolean")])
def test_expect_mapping_names_the_field_and_what_it_holds_in_one_line(value, got) -> None:
    with pytest.raises(ValueError) as refused:
        expect_mapping(value, "dataset.yaml: splits", "a mapping of split names to list files")
    assert str(refused.value) == (f"dataset.yaml: splits: expected a mapping of split names to "
                                  f"list files, got {got}")


def test_expect_mapping_raises_the_readers_own_error() -> None:
    class RecipeError(ValueError):
        pass

    with pytest.raises(RecipeError, match="^recipe: expected a mapping, got a list$"):
        expect_mapping([], "recipe", error=RecipeError)


def test_fields_of_reads_an_entry_that_is_no_object_as_having_no_fields() -> None:
    assert fields_of({"label": "car"}) == {"label": "car"}
    assert fields_of(["car"]) == {} and fields_of(None) == {}


def test_describe_names_other_values_by_their_type() -> None:
    assert describe(object()) == "a value of type object"
