"""Loss sampling ("patchwise training", §4.3 and Figure 5 of the FCN paper) at CPU scale.

Trains the same small FCN-32s on the built-in synthetic scenes with loss sampling rates
p = 1, 0.5 and 0.25 (each cell of the stride-32 score grid kept in the loss with probability p),
scaling the images per batch by 1/p as the paper does, so that every step sees as many loss
cells on average; every run sees the same number of images. Records, per run, the training
loss on the whole images of each batch (whatever the sampling kept) and the validation mean IU
every ``--eval-every`` iterations, against the iteration and the training wall time
(evaluations not counted). Prints a table and writes JSON and, with matplotlib (the ``viz``
extra), a PNG of both views. The conclusion printed is measured, not assumed:

    PYTHONPATH=src .venv/bin/python benchmarks/loss_sampling.py             # a few minutes
    PYTHONPATH=src .venv/bin/python benchmarks/loss_sampling.py --images 6144
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fcnseg.data import build_dataset, build_eval_transform, build_train_transform
from fcnseg.data.collate import collate_segmentation
from fcnseg.engine.evaluation import evaluate_model
from fcnseg.engine.loss import LossSampler, score_grid, segmentation_loss
from fcnseg.models import build_model
from fcnseg.utils.hardware import cpu_info

RATES = (1.0, 0.5, 0.25)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=3072,
                   help="training images each run sees (a multiple of batch/p for every p)")
    p.add_argument("--batch", type=int, default=4, help="images per step at p = 1")
    p.add_argument("--size", type=int, default=128, help="image side (128 = 4×4 score cells)")
    p.add_argument("--eval-every", type=int, default=24, help="evaluate every N iterations")
    p.add_argument("--val-images", type=int, default=40)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summarise", type=Path, metavar="JSON",
                   help="print the table and plot from a saved OUT.json instead of training")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/loss_sampling"),
                   help="writes OUT.json and OUT.png")
    return p


def _model(num_classes: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("fcn32s", num_classes=num_classes, geometry="same", width=0.125,
                       fc_channels=128, dropout=0.0, input_convention="torchvision_rgb")


def run_rate(rate: float, args: argparse.Namespace, train_ds: Any,
             val_loader: DataLoader) -> dict[str, Any]:
    """Train one run at sample rate ``rate``; its curves and totals."""
    batch = round(args.batch / rate)
    iterations = args.images // batch
    model = _model(train_ds.num_classes, args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    cell, offset = score_grid(model)
    sampler = LossSampler(rate, ignore_index=train_ds.ignore_index, cell=cell, offset=offset,
                          seed=args.seed)
    loader = DataLoader(train_ds, batch_size=batch, shuffle=True, drop_last=True,
                        collate_fn=partial(collate_segmentation,
                                           ignore_index=train_ds.ignore_index),
                        generator=torch.Generator().manual_seed(args.seed))
    curve: list[dict[str, Any]] = []
    trained_s, it = 0.0, 0
    batches = iter(loader)
    while it < iterations:
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            continue
        start = time.perf_counter()
        model.train()
        logits = model(images)
        loss = segmentation_loss(logits, sampler(labels), reduction="mean",
                                 ignore_index=train_ds.ignore_index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        trained_s += time.perf_counter() - start
        it += 1
        whole = float(segmentation_loss(logits.detach(), labels, reduction="mean",
                                        ignore_index=train_ds.ignore_index))
        record: dict[str, Any] = {"iteration": it, "images": it * batch,
                                  "wall_s": round(trained_s, 3), "loss": round(whole, 5)}
        if it % args.eval_every == 0 or it == iterations:
            scores = evaluate_model(model, val_loader, num_classes=train_ds.num_classes,
                                    ignore_index=train_ds.ignore_index)
            record["mean_iu"] = round(float(scores["mean_iu"]), 5)
        curve.append(record)
    return {"rate": rate, "batch": batch, "iterations": iterations, "curve": curve}


def _smoothed_loss(curve: list[dict[str, Any]], upto: int, window: int = 10) -> float:
    """Mean whole-image training loss over the ``window`` iterations up to ``upto``."""
    values = [r["loss"] for r in curve if upto - window < r["iteration"] <= upto]
    return sum(values) / len(values)


def _at(curve: list[dict[str, Any]], key: str, limit: float, value: str) -> dict[str, Any]:
    """The last record with ``key`` ≤ ``limit`` that has ``value``."""
    return [r for r in curve if r[key] <= limit and value in r][-1]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The table's rows: each run at its end, and whole-image training (runs[0], p = 1) at the
    same iteration and at the same training seconds."""
    full = runs[0]["curve"]
    rows = []
    for r in runs:
        c, end = r["curve"], r["curve"][-1]
        seconds = min(end["wall_s"], full[-1]["wall_s"])
        rows.append({
            "rate": r["rate"], "batch": r["batch"], "iterations": r["iterations"],
            "images": end["images"], "wall_s": end["wall_s"],
            "s_per_iteration": round(end["wall_s"] / r["iterations"], 4),
            "end_loss": round(_smoothed_loss(c, r["iterations"]), 4),
            "end_mean_iu": end["mean_iu"],
            "whole_loss_same_iteration": round(_smoothed_loss(full, r["iterations"]), 4),
            "whole_mean_iu_same_iteration":
                _at(full, "iteration", r["iterations"], "mean_iu")["mean_iu"],
            "seconds": seconds,
            "mean_iu_at_seconds": _at(c, "wall_s", seconds, "mean_iu")["mean_iu"],
            "whole_mean_iu_at_seconds": _at(full, "wall_s", seconds, "mean_iu")["mean_iu"],
        })
    return {"rows": rows, "conclusion": conclusion(rows)}


def conclusion(rows: list[dict[str, Any]]) -> str:
    """What the numbers say about sampling against whole images (rows[0] is p = 1)."""
    full, lines = rows[0], []
    for r in rows[1:]:
        loss_ratio = r["end_loss"] / r["whole_loss_same_iteration"]
        per_it = r["end_mean_iu"] - r["whole_mean_iu_same_iteration"]
        per_s = r["mean_iu_at_seconds"] - r["whole_mean_iu_at_seconds"]
        cost = r["s_per_iteration"] / full["s_per_iteration"]
        lines.append(
            f"p={r['rate']:g}: per iteration {_verdict(per_it, 1 - loss_ratio)} (at iteration "
            f"{r['iterations']}: loss {r['end_loss']:.3f} vs {r['whole_loss_same_iteration']:.3f}"
            f", mean IU {100 * per_it:+.1f}); per second {_verdict(per_s)} (mean IU "
            f"{100 * per_s:+.1f} at {r['seconds']:.0f} s); an iteration costs {cost:.2f}× "
            f"whole-image training's")
    return "\n".join(lines)


def _verdict(miou_delta: float, loss_gain: float = 0.0) -> str:
    # 2 mean IU points or 5 % of the loss: below that, run-to-run noise at this scale
    if miou_delta > 0.02 or (abs(miou_delta) <= 0.02 and loss_gain > 0.05):
        return "faster"
    if miou_delta < -0.02 or (abs(miou_delta) <= 0.02 and loss_gain < -0.05):
        return "slower"
    return "no clear difference"


def format_table(summary: dict[str, Any]) -> str:
    head = ("| p | images/step | iterations | train s | s/iteration | loss | mean IU | "
            "p = 1 at the same iteration: loss, mean IU | mean IU at the same seconds: "
            "this, p = 1 |")
    lines = [head, "|" + "---|" * 9]
    for r in summary["rows"]:
        lines.append(
            f"| {r['rate']:g} | {r['batch']} | {r['iterations']} | {r['wall_s']:.1f} | "
            f"{r['s_per_iteration']:.3f} | {r['end_loss']:.3f} | {100 * r['end_mean_iu']:.1f} | "
            f"{r['whole_loss_same_iteration']:.3f}, "
            f"{100 * r['whole_mean_iu_same_iteration']:.1f} | "
            f"{100 * r['mean_iu_at_seconds']:.1f}, {100 * r['whole_mean_iu_at_seconds']:.1f} "
            f"({r['seconds']:.0f} s) |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path) -> bool:
    """Loss and mean IU against iterations and wall seconds; False without matplotlib."""
    try:
        # matplotlib is the optional "viz" extra: only the plot needs it
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharey="row")
    for r in runs:
        c = r["curve"]
        label = "whole images" if r["rate"] == 1 else f"p = {r['rate']:g}"
        evals = [x for x in c if "mean_iu" in x]
        for col, key in enumerate(("iteration", "wall_s")):
            xs = [x[key] for x in c]
            ys = [_smoothed_loss(c, x["iteration"]) for x in c]
            axes[0, col].plot(xs, ys, label=label)
            axes[1, col].plot([x[key] for x in evals], [100 * x["mean_iu"] for x in evals],
                              marker="o", label=label)
    for col, name in enumerate(("iteration", "training wall time (s)")):
        axes[1, col].set_xlabel(name)
    axes[0, 0].set_ylabel("training loss (whole images, smoothed)")
    axes[1, 0].set_ylabel("validation mean IU (%)")
    axes[0, 0].legend()
    fig.suptitle("Loss sampling, images per step scaled by 1/p, same images seen")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main() -> None:
    args = build_parser().parse_args()
    if args.summarise:
        saved = json.loads(args.summarise.read_text())
        summary = summarise(saved["runs"])
        print(f"{format_table(summary)}\n\n{summary['conclusion']}\n({saved['machine']})")
        if plot(saved["runs"], args.summarise.with_suffix(".png")):
            print(f"wrote {args.summarise.with_suffix('.png')}")
        return
    torch.set_num_threads(args.threads)
    train_ds = build_dataset({"name": "synthetic", "num_images": 512, "size": args.size,
                              "seed": args.seed}, split="train",
                             transform=build_train_transform(flip=True))
    val_ds = build_dataset({"name": "synthetic", "num_images": args.val_images,
                            "size": args.size, "seed": args.seed}, split="val",
                           transform=build_eval_transform())
    val_loader = DataLoader(val_ds, batch_size=10, collate_fn=partial(
        collate_segmentation, ignore_index=val_ds.ignore_index))
    runs = []
    for rate in RATES:
        runs.append(run_rate(rate, args, train_ds, val_loader))
        print(f"p={rate:g}: {runs[-1]['iterations']} iterations in "
              f"{runs[-1]['curve'][-1]['wall_s']:.1f} s", flush=True)
    summary = summarise(runs)
    machine = f"{cpu_info().model}, {args.threads} thread(s), torch {torch.__version__}"
    print(f"\n{format_table(summary)}\n\n{summary['conclusion']}\n({machine})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine,
         "summary": summary, "runs": runs}, indent=1))
    if plot(runs, args.out.with_suffix(".png")):
        print(f"wrote {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
