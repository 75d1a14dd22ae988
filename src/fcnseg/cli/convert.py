"""``fcnseg convert``: a reference ``.caffemodel`` to a self-describing fcnseg checkpoint."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fcnseg.weightfiles.reference import CAFFE_HOST, OXFORD_VGG16_URL, REFERENCE_MODELS

NAME = "convert"
HELP = ("Convert a Caffe .caffemodel (the FCN reference release, or the ImageNet VGG16) into an "
        "fcnseg checkpoint that predict, evaluate, serve and export take as it is. No Caffe "
        "needed.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    names = ", ".join(name for name in REFERENCE_MODELS if name != "VGG_ILSVRC_16_layers")
    p.epilog = (f"The reference release's files are {CAFFE_HOST}/NAME.caffemodel for NAME in "
                f"{names}; the ImageNet VGG16 is at {OXFORD_VGG16_URL} (the Oxford VGG page). "
                f"Converting needs protobuf, the caffe extra: pip install 'fcnseg[caffe]'.")
    p.add_argument("caffemodel", help=".caffemodel file (e.g. fcn8s-heavy-pascal.caffemodel)")
    p.add_argument("--out", required=True,
                   help="output: .pt checkpoint or .safetensors (the ImageNet VGG16 becomes a "
                        "state dict for --set model.backbone_weights=PATH)")
    p.add_argument("--arch", default=None,
                   help="reference model name (fcn8s-heavy-pascal, ...) or generic arch "
                        "(fcn32s, fcn16s, fcn8s, fcn8s_atonce, vgg16); default: recognised from "
                        "the file's layer names and shapes")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    try:
        from fcnseg.pretrained.convert import convert_caffemodel
    except ImportError as e:  # protobuf is the optional `caffe` extra
        raise RuntimeError(f"fcnseg convert needs protobuf ({e}); pip install 'fcnseg[caffe]'") \
            from e

    out = Path(args.out)
    if out.suffix not in (".pt", ".pth", ".safetensors"):
        raise ValueError(f"--out {out}: use a .pt, .pth or .safetensors file name")
    if out.exists() and not args.force:
        raise ValueError(f"--out {out} exists; pass --force to replace it")
    start = time.perf_counter()
    converted = convert_caffemodel(args.caffemodel, arch=args.arch)
    converted.save(out)
    ref = converted.reference
    if converted.is_backbone:
        what = f"ImageNet VGG16 state dict (convention {converted.convention.name})"
        use = f"fcnseg train ... --set model.backbone_weights={out}"
    else:
        model = converted.model
        what = (f"{model.arch}, {model.num_classes} classes"
                + (f" ({ref.dataset})" if ref.dataset else "")
                + f", convention {converted.convention.name}")
        use = f"fcnseg predict --checkpoint {out} IMAGES --out FOLDER"
    print(f"converted {args.caffemodel} ({ref.name}) to {out}: {what}, in "
          f"{time.perf_counter() - start:.1f} s")
    print(f"use it: {use}")
    return 0
