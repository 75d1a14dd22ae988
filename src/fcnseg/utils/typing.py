"""Type aliases shared across the package."""

from __future__ import annotations

import os

#: A file-system path as users pass it: a string or any ``os.PathLike``.
PathLike = str | os.PathLike[str]
