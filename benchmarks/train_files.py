"""``fcnseg train`` on a folder of image files against a plain loop that decodes them once.

The data: 400 training and 50 validation pairs (JPEG image, PNG mask) at 240×180 generated from
the synthetic scenes into a folder dataset. The model: FCN-8s on a slim ResNet-18 (an
ImageNet-style backbone, random init, ``base_channels`` 32), batch 8, flips, pixel-averaged
loss, SGD with poly decay, ``--iterations`` steps.

- ``fcnseg train``: the command in a fresh process with a recipe that names only the above
  (everything else its defaults: data cache, loader workers, validation batches, checkpoints,
  TensorBoard), so its time holds imports, start-up, training, the final evaluation of the 50
  validation images and the checkpoints.
- The plain loop: a fresh process too, that decodes every file once into tensors of raw
  pixels (the model normalises its input itself, as documented), then trains the same model
  (random batches, flips, ``F.cross_entropy``, SGD, poly), evaluates the validation images
  (confusion matrix, mean IU) and saves model and optimizer once. Both reach about the same
  mean IU: the comparison is of equal work.

Both are timed interleaved (fcnseg, plain, plain, fcnseg, ...), wall clock, with the same
threads. The CPU may be shared with other work: the ratio that counts is fcnseg's time over the
plain loop's within each round (paired), and its median over the rounds.

    python benchmarks/train_files.py                   # 300 iterations, 3 rounds
    python benchmarks/train_files.py --quick           # 100 iterations, 2 rounds

Last line: ``TARGET train_files_ratio measured=<fcnseg / plain> goal=1.1`` (ok when ≤ 1.1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from fcnseg.bench.targets import print_target
from fcnseg.data import build_dataset

GOAL = 1.10
SIZE = (180, 240)  # H×W: 240×180 images

#: The plain loop: decode once, train, evaluate, save. argv: root iterations out threads
PLAIN = r"""
import json, sys, time
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
from fcnseg.models import build_model
root, iterations, out, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)
classes = len(json.load(open(f"{root}/classes.json")))
torch.manual_seed(0)
model = build_model("fcn8s_resnet18", num_classes=classes, base_channels=32)

def read(split):
    # raw 0-255 pixels, as the model takes them (its own first layer normalises them)
    ids = open(f"{root}/{split}.txt").read().split()
    images = np.stack([np.asarray(Image.open(f"{root}/images/{i}.jpg").convert("RGB"))
                       for i in ids])
    masks = np.stack([np.asarray(Image.open(f"{root}/masks/{i}.png")) for i in ids])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    return x.contiguous(memory_format=torch.channels_last), torch.from_numpy(masks).long()

train_x, train_y = read("train")
val_x, val_y = read("val")
model = model.to(memory_format=torch.channels_last).train()
params = [p for p in model.parameters() if p.requires_grad]
optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
g = torch.Generator().manual_seed(0)
step, order = 0, torch.randperm(len(train_x), generator=g)
while step < iterations:
    for k in range(0, len(order) - 7, 8):
        idx = order[k:k + 8]
        x, y = train_x[idx], train_y[idx]
        flip = torch.rand(8, generator=g) < 0.5
        x = torch.where(flip.view(8, 1, 1, 1), x.flip(-1), x)
        y = torch.where(flip.view(8, 1, 1), y.flip(-1), y)
        for group in optimizer.param_groups:
            group["lr"] = 0.01 * (1 - step / iterations) ** 0.9
        loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y,
                               ignore_index=255)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step >= iterations:
            break
    order = torch.randperm(len(train_x), generator=g)
model.eval()
confusion = torch.zeros(classes, classes, dtype=torch.long)
with torch.no_grad():
    for k in range(0, len(val_x), 10):
        pred = model(val_x[k:k + 10]).argmax(1)
        y = val_y[k:k + 10]
        valid = y != 255
        confusion += torch.bincount(y[valid] * classes + pred[valid],
                                    minlength=classes * classes).view(classes, classes)
inter = confusion.diag().double()
union = confusion.sum(0) + confusion.sum(1) - confusion.diag()
iu = inter / union.clamp(min=1)
print(f"MEAN_IU {float(iu[union > 0].mean()):.4f}")
torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, out)
"""


def write_dataset(root: Path, train: int = 400, val: int = 50) -> list[str]:
    """Synthetic scenes at 240×180 as JPEG images and PNG masks in a folder dataset."""
    scenes = build_dataset({"name": "synthetic", "num_images": train + val, "size": list(SIZE),
                            "seed": 0}, split="train")
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(train + val):
        image, label = scenes.load(i)
        Image.fromarray(image).save(root / "images" / f"{i:04d}.jpg", quality=90)
        Image.fromarray(label.astype(np.uint8)).save(root / "masks" / f"{i:04d}.png")
    (root / "train.txt").write_text("".join(f"{i:04d}\n" for i in range(train)))
    (root / "val.txt").write_text("".join(f"{i:04d}\n" for i in range(train, train + val)))
    classes = list(scenes.classes)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"classes": classes}))
    (root / "classes.json").write_text(json.dumps(classes))
    return classes


def recipe(root: Path, iterations: int) -> dict:
    """What a user writes for this data and model; everything else is fcnseg's default."""
    return {
        "name": "files",
        "model": {"arch": "fcn8s_resnet18", "options": {"base_channels": 32}},
        "data": {"train": {"name": "folder", "root": str(root), "split": "train"},
                 "val": {"name": "folder", "root": str(root), "split": "val"},
                 "batch_size": 8, "flip": True},
        "loss": {"reduction": "mean"},
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
                  "bias_lr_mult": 1.0},
        "schedule": {"name": "poly", "power": 0.9},
        "train": {"iterations": iterations},
        "device": "cpu",
    }


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, all threads) and stdout of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, done.stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="100 iterations, 2 rounds")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.iterations, args.repeats = 100, 2
    work = Path(tempfile.mkdtemp(prefix="fcnseg-train-files-"))
    root = work / "data"
    write_dataset(root)
    recipe_path = work / "files.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe(root, args.iterations)))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    fcnseg_cmd = [sys.executable, "-m", "fcnseg", "train", "--recipe", str(recipe_path)]
    plain_cmd = [sys.executable, "-c", PLAIN, str(root), str(args.iterations),
                 str(work / "plain.pt"), str(args.threads)]
    rounds: list[dict] = []
    for r in range(args.repeats):
        order = ("fcnseg", "plain") if r % 2 == 0 else ("plain", "fcnseg")
        result: dict = {}
        for name in order:
            if name == "fcnseg":
                out = work / f"run{r}"
                seconds, cpu, text = timed([*fcnseg_cmd, "--out", str(out)], env)
                miu = re.findall(r"mean IU (\d+\.\d+)", text)
                first = re.search(r"time to first step: ([\d.]+) s", text)
                result["fcnseg"] = {"s": seconds, "cpu_s": cpu,
                                    "mean_iu": float(miu[-1]) / 100 if miu else None,
                                    "to_first_step_s": float(first.group(1)) if first else None,
                                    "log": [ln for ln in text.splitlines()
                                            if ln.startswith(("data cache", "evaluation:",
                                                              "time to first"))]}
                shutil.rmtree(out, ignore_errors=True)
            else:
                seconds, cpu, text = timed(plain_cmd, env)
                miu = re.search(r"MEAN_IU ([\d.]+)", text)
                result["plain"] = {"s": seconds, "cpu_s": cpu,
                                   "mean_iu": float(miu.group(1)) if miu else None}
        result["ratio"] = result["fcnseg"]["s"] / result["plain"]["s"]
        rounds.append(result)
        # CPU seconds too: on a machine shared with other work, waiting inflates wall time
        # (and, with several threads, the spinning of threads waiting for each other)
        cpu_ratio = result["fcnseg"]["cpu_s"] / result["plain"]["cpu_s"]
        print(f"round {r + 1}: fcnseg train {result['fcnseg']['s']:.1f} s (mean IU "
              f"{result['fcnseg']['mean_iu']}, first step after "
              f"{result['fcnseg']['to_first_step_s']} s), plain loop {result['plain']['s']:.1f} s "
              f"(mean IU {result['plain']['mean_iu']}): ratio {result['ratio']:.3f}; CPU "
              f"{result['fcnseg']['cpu_s']:.1f} s vs {result['plain']['cpu_s']:.1f} s "
              f"(ratio {cpu_ratio:.3f})", flush=True)
    for line in rounds[0]["fcnseg"]["log"]:
        print(f"  fcnseg said: {line}")
    shutil.rmtree(work, ignore_errors=True)
    ratio = statistics.median(r["ratio"] for r in rounds)
    print(f"\n400 JPEG/PNG pairs at 240×180, FCN-8s ResNet-18 (base 32), batch 8, "
          f"{args.iterations} iterations, {args.threads} threads, {args.repeats} rounds: "
          f"fcnseg train / plain loop (paired, median) = {ratio:.3f} (goal <= {GOAL})")
    if args.json:
        Path(args.json).write_text(json.dumps({"iterations": args.iterations, "rounds": rounds,
                                               "ratio": ratio}, indent=2))
    print_target("train_files_ratio", ratio, GOAL, ok=ratio <= GOAL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
