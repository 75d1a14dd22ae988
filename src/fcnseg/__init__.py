"""fcnseg: Fully Convolutional Networks for semantic segmentation in plain PyTorch."""

from typing import Any

__version__ = "0.1.0"

__all__ = ["Segmenter", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `import fcnseg` (e.g. for the CLI's --help) stays light.
    if name == "Segmenter":
        from fcnseg.inference import Segmenter

        return Segmenter
    raise AttributeError(f"module 'fcnseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
