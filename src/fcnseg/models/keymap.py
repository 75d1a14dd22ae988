"""A key map applied when saving and loading keeps the reference's state-dict names.
The submodules are ordinary (``model.trunk.fc6``), the keys the reference's (``fc6.weight``),
so earlier checkpoints and converted ``.caffemodel`` files load unchanged, wrapped or not."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn


class KeyMap:
    """Pairs ``(module path prefix, reference prefix)``, e.g. ``("trunk.", "")`` and
    ``("heads.out.score_fr.", "score_fr.")``; the longest matching prefix wins either way."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)
        self._to_reference = sorted(self.pairs, key=lambda p: -len(p[0]))
        self._to_module = sorted(self.pairs, key=lambda p: -len(p[1]))

    def to_reference(self, key: str) -> str:
        """The reference name of a module path key (``trunk.fc6.weight`` → ``fc6.weight``)."""
        for path, ref in self._to_reference:
            if key.startswith(path):
                return ref + key[len(path):]
        return key

    def to_module(self, key: str) -> str:
        """The module path of a reference key (``score_fr.bias`` → ``heads.out.score_fr.bias``)."""
        for path, ref in self._to_module:
            if key.startswith(ref):
                return path + key[len(ref):]
        return key


def _rename(state_dict: Any, prefix: str, rename: Callable[[str], str]) -> None:
    """Rename, in place and in order, the keys of ``state_dict`` under ``prefix``."""
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        if key.startswith(prefix):
            key = prefix + rename(key[len(prefix):])
        state_dict[key] = value


def _save_hook(module: nn.Module, state_dict: Any, prefix: str, local_metadata: Any) -> None:
    _rename(state_dict, prefix, module.key_map.to_reference)


def _load_hook(module: nn.Module, state_dict: Any, prefix: str, *args: Any) -> None:
    _rename(state_dict, prefix, module.key_map.to_module)


def use_reference_keys(module: nn.Module, key_map: KeyMap) -> None:
    """Make ``module``'s state dict use ``key_map``'s reference names (``module.key_map``)."""
    module.key_map = key_map
    module.register_state_dict_post_hook(_save_hook)
    module.register_load_state_dict_pre_hook(_load_hook)
