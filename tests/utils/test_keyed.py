"""One shape inside: a single value is the dict {None: value}, converted back at the edge."""

from __future__ import annotations

import torch

from fcnseg.utils.keyed import first_of, keyed, unkeyed


def test_a_single_tensor_is_keyed_by_none_and_given_back_as_it_was() -> None:
    x = torch.zeros(2, 3)
    values = keyed(x)
    assert values == {None: x}
    assert unkeyed(values) is x
    assert unkeyed({k: v + 1 for k, v in values.items()}).equal(x + 1)


def test_a_dict_keeps_its_keys_in_order() -> None:
    inputs = {"color": torch.zeros(1), "hha": torch.ones(1)}
    values = keyed(inputs)
    assert list(values) == ["color", "hha"] and values is not inputs
    assert unkeyed(values) is values


def test_first_of_is_the_value_or_the_first_of_a_dict() -> None:
    a, b = torch.zeros(1), torch.ones(1)
    assert first_of(a) is a
    assert first_of({"semantic": b, "geometric": a}) is b
