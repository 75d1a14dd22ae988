"""The ``fcnseg bench`` suite times inference, training, evaluation and fast-path options.
Each comparison is timed interleaved in one run, into one JSON-ready dict printed by
:func:`format_report`."""

from __future__ import annotations

import itertools
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from fcnseg.bench.folder import write_synthetic_folder
from fcnseg.bench.timing import (
    OtherLoad,
    agreement,
    count_flops,
    matmul_variants,
    peak_rss_mb,
    reset_peak_rss,
    round_logger,
    time_interleaved,
)
from fcnseg.data import (
    FolderSegmentation,
    SyntheticSegmentation,
    build_eval_transform,
    collate_segmentation,
)
from fcnseg.inference.runner import InferenceRunner
from fcnseg.metrics import ConfusionMatrix
from fcnseg.models import GEOMETRIES, build_model, optimize, plain_copy
from fcnseg.utils.hardware import cpu_info


@dataclass
class BenchConfig:
    """What ``fcnseg bench`` measures. The defaults take about 11 minutes on 2 idle CPU cores at
    full width; :meth:`quick` about 3."""

    devices: tuple[str, ...] = ("cpu",)
    models: tuple[str, ...] = ("fcn32s", "fcn16s", "fcn8s")
    sizes: tuple[tuple[int, int], ...] = ((500, 500), (512, 1024))
    batches: tuple[int, ...] = (1, 4)
    warmup: int = 1
    repeats: int = 3
    train_model: str = "fcn8s"
    train_crop: int = 320
    train_batch: int = 2
    eval_images: int = 6
    eval_size: tuple[int, int] = (500, 500)
    option_size: tuple[int, int] = (500, 500)
    compile: bool = False
    loader: bool = True
    num_classes: int = 21
    width: float = 1.0
    fc_channels: int = 4096
    sections: tuple[str, ...] = ("inference", "training", "evaluation", "options")
    peak_size: int = 4096
    clock: str = "wall"
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse settings that cannot be measured before any timing starts."""
        positive = {"batches": self.batches, "train_crop": (self.train_crop,),
                    "train_batch": (self.train_batch,), "eval_images": (self.eval_images,),
                    "fc_channels": (self.fc_channels,), "peak_size": (self.peak_size,),
                    "repeats": (self.repeats,), "width": (self.width,),
                    "sizes": tuple(v for size in self.sizes for v in size)}
        for name, values in positive.items():
            if not values or min(values) <= 0:
                raise ValueError(f"bench {name}: must be positive, got {values}")
        if self.warmup < 0:
            raise ValueError(f"bench warmup: must be at least 0, got {self.warmup}")

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """FCN-8s only, 500×500, batch 1, two repeats: about 3 minutes on 2 idle CPU cores."""
        base = {"models": ("fcn8s",), "sizes": ((500, 500),), "batches": (1,), "repeats": 2,
                "train_crop": 256, "train_batch": 1, "eval_images": 3, "loader": False}
        base.update(overrides)
        return cls(**base)


# -- models and inputs ------------------------------------------------------------------------
def trained_looking(model: nn.Module, seed: int = 0, std: float = 0.01) -> nn.Module:
    """Give the (zero-initialised) score layers random normal weights, in place, so that
    logits vary (zero scorers give every pixel one label). Not a trained model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict(keep_vars=True).items():  # the reference's names
            if name.startswith("score") and name.endswith("weight"):
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def synthetic_batch(count: int, size: tuple[int, int],
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` synthetic scenes (raw images, labels) as N×3×H×W uint8 / N×H×W."""
    data = SyntheticSegmentation(count, size, seed=seed, transform=build_eval_transform())
    images, labels = zip(*(data[i] for i in range(count)), strict=True)
    return torch.stack(images), torch.stack(labels)


def fit_scorers(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> nn.Module:
    """Set the score layers to nearest-class-mean classifiers of the trunk's features, in place.

    A closed-form stand-in for training: ``w_c = μ_c``, ``b_c = -|μ_c|²/2`` (μ_c: mean feature
    of class c at that stride), centred and scaled to unit spread, so that logits are peaked
    like a trained model's and argmax agreement between precisions means something.
    """
    maps = model.coord_maps()
    with torch.no_grad():
        features = model.features(model.preprocess(images))
        for name, stride in (("score_fr", 32), ("score_pool4", 16), ("score_pool3", 8)):
            layer = getattr(model.head, name, None)
            if layer is None:
                continue
            feats, cmap = features[stride] * getattr(layer, "input_scale", 1.0), maps[stride]
            n, ch, h, w = feats.shape
            rows = (torch.arange(h) * cmap.scale + cmap.shift).round().long()
            cols = (torch.arange(w) * cmap.scale + cmap.shift).round().long()
            rows = rows.clamp(0, labels.shape[-2] - 1)
            cols = cols.clamp(0, labels.shape[-1] - 1)
            lab = labels[:, rows][:, :, cols].reshape(-1)
            f = feats.permute(0, 2, 3, 1).reshape(-1, ch).double()
            weight = torch.zeros(layer.out_channels, ch, dtype=torch.float64)
            bias = torch.zeros(layer.out_channels, dtype=torch.float64)
            present = torch.zeros(layer.out_channels, dtype=torch.bool)
            for c in range(layer.out_channels):
                sel = lab == c
                if sel.any():
                    mu = f[sel].mean(0)
                    weight[c], bias[c], present[c] = mu, -0.5 * mu.square().sum(), True
            logits = f @ weight[present].t() + bias[present]
            spread = logits.std().clamp_min(1e-12) if logits.numel() > 1 else 1.0
            # Centred, unit-spread logits (a shift common to all classes keeps every argmax);
            # classes absent from the fitting labels sit far below and are never predicted.
            bias = torch.where(present, (bias - logits.mean()) / spread,
                               torch.full_like(bias, -20.0))
            layer.weight.copy_((weight / spread).view_as(layer.weight))
            layer.bias.copy_(bias)
    return model


def _pair_of_models(cfg: BenchConfig, arch: str, device: str, *,
                    optimized: bool = True) -> dict[str, nn.Module]:
    """One set of weights in both geometries, in eval mode on ``device``, optimized or not."""
    torch.manual_seed(cfg.seed)
    kwargs = {"num_classes": cfg.num_classes, "width": cfg.width, "fc_channels": cfg.fc_channels}
    caffe = trained_looking(build_model(arch, geometry="caffe", **kwargs), cfg.seed)
    same = build_model(arch, geometry="same", **kwargs)
    same.load_state_dict(caffe.state_dict())
    models = {"caffe": caffe.to(device).eval(), "same": same.to(device).eval()}
    if optimized:
        for m in models.values():
            optimize(m, "inference", device=device)
    return models


def _input(cfg: BenchConfig, batch: int, size: tuple[int, int], device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(cfg.seed)
    return torch.randn(batch, 3, *size, generator=g).to(device)


_PEAK = "__mm_peak__"


def _mm_variants(cfg: BenchConfig, device: str, dtype: torch.dtype,
                 key: str = _PEAK) -> dict[str, Callable[[], object]]:
    """Large matrix products timed alongside the models (the peak under the same load), one
    per GEMM library, keyed ``key|library``. On CUDA the float32 mm uses TF32 where cuDNN's
    convolutions do, so that models meet the peak of the arithmetic they use."""
    variants = matmul_variants(dtype, device, size=cfg.peak_size, seed=cfg.seed)
    mm = variants["torch.mm"]
    if device == "cuda" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        def tf32_mm() -> object:
            previous = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                return mm()
            finally:
                torch.backends.cuda.matmul.allow_tf32 = previous

        variants["torch.mm"] = tf32_mm
    return {f"{key}|{library}": fn for library, fn in variants.items()}


def _peak_from(times: dict[str, Any], cfg: BenchConfig, key: str = _PEAK) -> float:
    """FLOP/s of the fastest matrix product by its median (its timings leave ``times``)."""
    mine = [k for k in times if k.startswith(f"{key}|")]
    return max(2 * cfg.peak_size**3 / times.pop(k).median for k in mine)


def _timing_fields(t: Any, images: int, flops: int | None, peak: float | None) -> dict:
    out = {"median_s": t.median, "min_s": t.low, "max_s": t.high, "spread": t.spread,
           "images_per_s": images / t.median}
    if flops is not None:
        out["gflop"] = flops / 1e9
        out["gflop_per_s"] = flops / t.median / 1e9
        if peak:
            out["fraction_of_mm_peak"] = flops / t.median / peak
    return out


# -- sections ---------------------------------------------------------------------------------
Log = Callable[[str], None]


def _size(size: Any) -> str:
    return "×".join(map(str, size))


def _clock(cfg: BenchConfig, device: str) -> str:
    """CPU-time clock only where it means something: CPU work, in this process."""
    return cfg.clock if device == "cpu" else "wall"


def machine_info() -> dict[str, Any]:
    """torch build, threads and CPU model/flags (:func:`run_suite` adds the mm peaks timed
    with its rows)."""
    cpu = cpu_info()
    return {"torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "cpu": cpu.model,
            "cpu_flags": [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
                          if f in cpu.flags],
            "mm_peak_gflop_per_s": {}}


def _per_geometry(cfg: BenchConfig, device: str, arch: str, shape: dict[str, Any],
                  variants: dict[str, Callable[[], object]], flops: dict[str, int],
                  progress: Callable[[int, int], None]) -> list[dict[str, Any]]:
    """One row per geometry, timed interleaved with a float32 mm (the fraction-of-peak column),
    with its peak memory; the last row gets the same/caffe speed-up."""
    reset = reset_peak_rss()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = time_interleaved({**variants, **_mm_variants(cfg, device, torch.float32)},
                             warmup=cfg.warmup, repeats=cfg.repeats, device=device,
                             clock=_clock(cfg, device), progress=progress)
    memory = {"peak_rss_mib": round(peak_rss_mb(), 1), "peak_rss_is_process_peak": not reset}
    if device == "cuda":
        memory["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    peak = _peak_from(times, cfg)
    rows = [{"device": device, "model": arch, "geometry": g, **shape,
             **_timing_fields(times[g], shape["batch"], flops[g], peak),
             "mm_peak_gflop_per_s": peak / 1e9, **memory} for g in GEOMETRIES]
    rows[-1]["speedup_vs_caffe"] = times["caffe"].median / times["same"].median
    return rows


def bench_inference(cfg: BenchConfig, device: str, log: Log) -> list[dict[str, Any]]:
    """Latency and throughput per model, size and batch; both geometries interleaved, with a
    float32 matrix multiply timed among them for the fraction-of-peak column."""
    rows: list[dict[str, Any]] = []
    count = len(cfg.models) * len(cfg.sizes) * len(cfg.batches)
    step = 0
    for arch in cfg.models:
        models = _pair_of_models(cfg, arch, device)
        runners = {g: InferenceRunner(m, device=device, precision="fp32", prepare=False)
                   for g, m in models.items()}
        for size in cfg.sizes:
            flops1 = {g: count_flops(m, _input(cfg, 1, size, device)) for g, m in models.items()}
            for batch in cfg.batches:
                step += 1
                what = f"[{device}] inference {step}/{count}: {arch} {_size(size)} batch {batch}"
                x = _input(cfg, batch, size, device)
                with torch.inference_mode():
                    rows += _per_geometry(
                        cfg, device, arch, {"size": list(size), "batch": batch, "dtype": "float32"},
                        {g: (lambda r=r, x=x: r.forward(x)) for g, r in runners.items()},
                        {g: f * batch for g, f in flops1.items()}, round_logger(log, what))
    return rows


def bench_training(cfg: BenchConfig, device: str, log: Log) -> list[dict[str, Any]]:
    """One SGD step (forward, pixel-averaged cross-entropy, backward, update) per geometry."""
    models = _pair_of_models(cfg, cfg.train_model, device)
    for m in models.values():
        optimize(m, "training")
    crop = (cfg.train_crop, cfg.train_crop)
    x = _input(cfg, cfg.train_batch, crop, device)
    g = torch.Generator().manual_seed(cfg.seed)
    y = torch.randint(0, cfg.num_classes, (cfg.train_batch, *crop), generator=g).to(device)
    optimizers = {name: torch.optim.SGD([p for p in m.parameters() if p.requires_grad],
                                        lr=1e-6, momentum=0.9) for name, m in models.items()}

    def step(name: str) -> None:
        optimizers[name].zero_grad(set_to_none=True)
        nn.functional.cross_entropy(models[name](x), y, ignore_index=255).backward()
        optimizers[name].step()

    return _per_geometry(cfg, device, cfg.train_model,
                         {"crop": list(crop), "batch": cfg.train_batch},
                         {name: (lambda n=name: step(n)) for name in models},
                         {name: count_flops(m, x, backward=True) for name, m in models.items()},
                         round_logger(log, f"[{device}] training step"))


def _loader(dataset: Any, workers: int, pin: bool, persistent: bool) -> Any:
    return DataLoader(dataset, batch_size=1, num_workers=workers, pin_memory=pin,
                      persistent_workers=persistent and workers > 0,
                      collate_fn=collate_segmentation)


def bench_evaluation(cfg: BenchConfig, device: str, log: Log) -> dict[str, Any]:
    """decode → transform → model → argmax → confusion matrix, against the model alone
    (FCN-8s same, float32 as evaluate_model runs it; a DataLoader without workers, which on
    2 cores would compete with the model's threads)."""
    runner = InferenceRunner(_pair_of_models(cfg, "fcn8s", device)["same"], device=device,
                             precision="fp32", prepare=False)
    out: dict[str, Any] = {"device": device, "model": "fcn8s", "geometry": "same",
                           "images": cfg.eval_images, "size": list(cfg.eval_size)}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_synthetic_folder(Path(tmp) / "eval", cfg.eval_images, 0, cfg.eval_size,
                                      cfg.seed)
        dataset = FolderSegmentation(root, transform=build_eval_transform())
        preloaded = [dataset[i][0][None].to(device) for i in range(len(dataset))]

        # Pass after pass over the files, each decoded anew; counted on the device.
        batches = itertools.chain.from_iterable(itertools.repeat(_loader(dataset, 0, False, False)))
        confusion = ConfusionMatrix(cfg.num_classes, device=runner.device)
        inputs = itertools.cycle(preloaded)

        def pipeline_step() -> None:
            image, label = next(batches)
            confusion.update(label, runner.forward(image).argmax(1))

        def model_step() -> None:
            runner.forward(next(inputs)).argmax(1)

        # Per image, alternating: many short samples ride out a shared machine's load swings.
        with torch.inference_mode():
            times = time_interleaved(
                {"pipeline": pipeline_step, "model_only": model_step}, warmup=1,
                repeats=cfg.eval_images * cfg.repeats, device=device, clock=_clock(cfg, device),
                progress=round_logger(log, f"[{device}] evaluation pipeline", cfg.eval_images))
        if cfg.loader:
            out["loader_options"] = bench_loader_options(
                cfg, dataset, round_logger(log, f"[{device}] DataLoader settings"))
    for name, t in times.items():
        out[name] = _timing_fields(t, 1, None, None)
    out["pipeline_fraction_of_model_only"] = times["model_only"].median / times["pipeline"].median
    return out


def bench_loader_options(cfg: BenchConfig, dataset: Any,
                         progress: Callable[[int, int], None] | None = None
                         ) -> list[dict[str, Any]]:
    """Decoding throughput of the DataLoader settings (workers, pinned memory, persistence),
    two passes per timing so that persistent workers show their saving."""
    max_workers = min(2, os.cpu_count() or 1)
    pin_ok = torch.cuda.is_available()
    settings = {"workers=0": (0, False, False)}
    for w in range(1, max_workers + 1):
        settings[f"workers={w}"] = (w, False, False)
        settings[f"workers={w},persistent"] = (w, False, True)
    if pin_ok:
        settings[f"workers={max_workers},pinned,persistent"] = (max_workers, True, True)
    loaders = {name: _loader(dataset, *s) for name, s in settings.items()}

    def two_passes(loader: Any) -> None:
        for _ in range(2):
            for _batch in loader:
                pass

    times = time_interleaved({k: (lambda ld=ld: two_passes(ld)) for k, ld in loaders.items()},
                             warmup=1, repeats=cfg.repeats, progress=progress)
    rows = [{"setting": k, **_timing_fields(t, 2 * len(dataset), None, None)}
            for k, t in times.items()]
    if not pin_ok:
        rows.append({"setting": "pinned memory", "note": "n/a: no CUDA device"})
    return rows


def _fast(model: nn.Module, *, gemm: bool = True, channels_last: bool = False) -> nn.Module:
    """An optimized copy of a plain model (:func:`fcnseg.models.optimize`)."""
    return optimize(plain_copy(model), "inference", gemm=gemm, channels_last=channels_last,
                    cudnn_benchmark=False)


def bench_options(cfg: BenchConfig, device: str, log: Log) -> dict[str, Any]:
    """FCN-8s at ``option_size``, batch 1: each fast path against the plain path (plain
    modules, NCHW, float32, no_grad), with its max |Δlogit| and argmax agreement against the
    plain path of its geometry. Weights: random trunk, scorers from :func:`fit_scorers`."""
    # Trained-like, peaked logits: scorers fitted on two synthetic scenes, a third as input.
    models = _pair_of_models(cfg, "fcn8s", device, optimized=False)
    fit_scorers(models["same"].cpu(), *synthetic_batch(2, cfg.option_size, cfg.seed))
    models["same"].to(device)
    models["caffe"].load_state_dict(models["same"].state_dict())
    x = synthetic_batch(1, cfg.option_size, cfg.seed + 1)[0].to(device)
    variants, compile_note = _option_variants(cfg, device, models, x)
    timed: dict[str, Callable[[], object]] = {k: fn for k, (fn, _) in variants.items()}
    mm_dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    for name, dtype in mm_dtypes.items():
        timed.update(_mm_variants(cfg, device, dtype, _PEAK + name))
    # Fast paths are the central comparison: at least 5 rounds, whatever --repeats says.
    times = time_interleaved(timed, warmup=cfg.warmup, repeats=max(5, cfg.repeats),
                             device=device, clock=_clock(cfg, device),
                             progress=round_logger(log, f"[{device}] fast paths, "
                                                        f"{len(timed)} variants"))
    peak = {f"{device}_{name}": _peak_from(times, cfg, _PEAK + name) for name in mm_dtypes}
    return {"device": device, "size": list(cfg.option_size),
            "rows": _option_rows(variants, times, models, x, peak),
            "mm_peak_gflop_per_s": {k: v / 1e9 for k, v in peak.items()},
            "cudnn_benchmark": ("n/a on CPU" if device != "cuda"
                                else "see the cuda rows (enabled by fcnseg.models.optimize)"),
            # compile_note is None exactly when cfg.compile is False
            "torch_compile": compile_note or "not measured (pass --compile)"}


Variants = dict[str, tuple[Callable[[], Any], str]]  # {variant: (call, dtype)}


def _option_variants(cfg: BenchConfig, device: str, models: dict[str, nn.Module],
                     x: torch.Tensor) -> tuple[Variants, str | None]:
    """The fast-path variants, each adding to the one before, and what torch.compile did."""
    same, caffe = models["same"], models["caffe"]
    same_cl = _fast(same, channels_last=True)

    def run(model: nn.Module, precision: str = "fp32") -> Callable[[], Any]:
        runner = InferenceRunner(model, device=device, precision=precision, prepare=False)
        return torch.inference_mode()(lambda: runner.forward(x))

    def no_grad(model: nn.Module) -> Callable[[], Any]:
        return torch.no_grad()(lambda: model(x))

    variants = {
        "caffe plain": (no_grad(caffe), "float32"),
        "plain (same, no_grad)": (no_grad(same), "float32"),
        "+inference_mode": (run(same), "float32"),
        "+upsample fast": (run(_fast(same, gemm=False)), "float32"),
        "+gemm fc6/fc7": (run(_fast(same)), "float32"),
        "caffe fast": (run(_fast(caffe)), "float32"),
        "+channels_last": (run(same_cl), "float32"),
        "caffe fast channels_last": (run(_fast(caffe, channels_last=True)), "float32"),
        "+bf16 autocast": (run(same_cl, "bf16"), "bfloat16"),
    }
    if device == "cuda":
        variants["+fp16 autocast"] = (run(same_cl, "fp16"), "float16")
    if not cfg.compile:
        return variants, None
    try:
        compiled = torch.compile(same_cl)
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
        variants["+torch.compile"] = (run(compiled), "float32")
        return variants, f"first call (compile) {time.perf_counter() - start:.1f} s"
    except Exception as e:  # a missing compiler toolchain must not sink the whole report
        return variants, f"failed: {type(e).__name__}: {e}"[:300]


def _option_rows(variants: Variants, times: dict[str, Any],
                 models: dict[str, nn.Module], x: torch.Tensor,
                 peak: dict[str, float]) -> list[dict[str, Any]]:
    """One row per variant: timing, speed-ups, and agreement with its geometry's plain path."""
    device = x.device.type
    with torch.inference_mode():
        reference = {g: m(x).float() for g, m in models.items()}
    flops = {g: count_flops(m, x) for g, m in models.items()}
    base = times["plain (same, no_grad)"].median
    caffe_base = times["caffe plain"].median
    rows = []
    for name, (fn, dtype) in variants.items():
        geometry = "caffe" if name.startswith("caffe") else "same"
        with torch.inference_mode():
            out = fn().float()
        key = f"{device}_float32" if dtype == "float32" else f"{device}_bfloat16"
        rows.append({"variant": name, "geometry": geometry, "dtype": dtype,
                     **_timing_fields(times[name], 1, flops[geometry], peak.get(key)),
                     "speedup_vs_plain_same": base / times[name].median,
                     "speedup_vs_caffe_plain_fp32": caffe_base / times[name].median,
                     **agreement(reference[geometry], out)})
    return rows


# -- the whole suite ----------------------------------------------------------------------------
@dataclass
class Report:
    """What :func:`run_suite` returns (as a dict via ``asdict``)."""

    config: dict[str, Any]
    machine: dict[str, Any]
    inference: list[dict[str, Any]] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)
    evaluation: list[dict[str, Any]] = field(default_factory=list)
    options: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    not_measured: list[str] = field(default_factory=list)
    complete: bool = False  # stays False in a stopped run's report
    finished_sections: list[str] = field(default_factory=list)  # "device section", in order
    stopped_by_signal: int | None = None  # set by ``fcnseg bench``


def run_suite(cfg: BenchConfig, log: Callable[[str], None] = print,
              on_section: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the configured sections on every available configured device; a JSON-ready dict.

    ``on_section`` gets the report so far (``complete`` False) after each finished section, so
    that a run stopped later still keeps what it measured."""
    devices = [d for d in cfg.devices if d != "cuda" or torch.cuda.is_available()]
    report = Report(config=asdict(cfg), machine=machine_info())
    if "cuda" in cfg.devices and "cuda" not in devices:
        report.not_measured.append("cuda: no CUDA device on this machine")
    sections = {"inference": (bench_inference, report.inference.extend),
                "training": (bench_training, report.training.extend),
                "evaluation": (bench_evaluation, report.evaluation.append),
                "options": (bench_options, report.options.append)}
    load: dict[str, float | None] = {}
    for device in devices:
        for name, (bench, keep) in sections.items():
            if name not in cfg.sections:
                continue
            log(f"[{device}] {name} ...")
            start = time.perf_counter()
            with OtherLoad() as other:
                keep(bench(cfg, device, log))
            load[f"{device} {name}"] = other.fraction
            log(f"[{device}] {name} done in {time.perf_counter() - start:.0f} s")
            report.finished_sections.append(f"{device} {name}")
            if on_section is not None:
                on_section(_snapshot(report, load))
    report.complete = True
    return _snapshot(report, load)


def _snapshot(report: Report, load: dict[str, float | None]) -> dict[str, Any]:
    """The report as it stands, with the load and targets of the sections measured so far."""
    report.machine["other_processes_cpu_share"] = dict(load)
    report.machine["mm_peak_gflop_per_s"] = peaks_used(report)
    report.targets = check_targets(report)
    return asdict(report)


def peaks_used(report: Report) -> dict[str, float]:
    """The mm peaks (GFLOP/s) that the "of mm peak" fractions divide by, per ``device_dtype``:
    each row's is timed in the same interleaved rounds as the row; the median over rows."""
    values: dict[str, list[float]] = {}
    for row in [*report.inference, *report.training]:
        if "mm_peak_gflop_per_s" in row:
            values.setdefault(f"{row['device']}_float32", []).append(row["mm_peak_gflop_per_s"])
    for opts in report.options:
        for key, value in opts.get("mm_peak_gflop_per_s", {}).items():
            values.setdefault(key, []).append(value)
    return {key: statistics.median(v) for key, v in values.items()}


def check_targets(report: Report) -> list[dict[str, Any]]:
    """The speed goals the fast paths were designed to reach, as far as this run measured
    them: each with its value, goal and whether this machine met it."""
    targets: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: float, note: str = "") -> None:
        if value is not None:
            targets.append({"target": name, "value": value, "goal": goal, "met": value >= goal,
                            "note": note})

    for opts in report.options:
        rows, dev = opts["rows"], opts["device"]
        t = {r["variant"]: r for r in rows}
        for caffe, same, paths in (("caffe fast", "+gemm fc6/fc7", "default paths"),
                                   ("caffe fast channels_last", "+channels_last",
                                    "both channels_last")):
            if caffe in t and same in t:
                add(f"[{dev}] FCN-8s {_size(opts['size'])} fp32: same / caffe ({paths})",
                    t[caffe]["median_s"] / t[same]["median_s"], 1.65)
        if "+bf16 autocast" in t:
            bf16 = t["+bf16 autocast"]
            for base in ("caffe fast", "caffe fast channels_last"):
                if base in t:
                    add(f"[{dev}] same+bf16 autocast / {base} fp32",
                        t[base]["median_s"] / bf16["median_s"], 2.8,
                        f"argmax agreement {bf16['argmax_agreement_pct']:.2f}% (goal >= 99.5)")
            add(f"[{dev}] bf16 argmax agreement with fp32 (%)", bf16["argmax_agreement_pct"],
                99.5, "random trunk, fitted scorers (fit_scorers), held-out synthetic scene")
        fp32 = [r for r in rows if r["dtype"] == "float32" and "fraction_of_mm_peak" in r]
        if fp32:
            best = max(fp32, key=lambda r: r["fraction_of_mm_peak"])
            add(f"[{dev}] best fp32 FCN-8s inference FLOP/s / fp32 mm peak",
                best["fraction_of_mm_peak"], 0.85, best["variant"])
        add(f"[{dev}] bf16 FCN-8s inference FLOP/s / bf16 mm peak",
            t.get("+bf16 autocast", {}).get("fraction_of_mm_peak"), 0.85, "+bf16 autocast")
    for ev in report.evaluation:
        add(f"[{ev['device']}] evaluation pipeline / model-only throughput",
            ev["pipeline_fraction_of_model_only"], 0.90)
    for r in report.training:
        if "speedup_vs_caffe" in r:
            add(f"[{r['device']}] training step same / caffe ({r['model']}, crop {r['crop'][0]})",
                r["speedup_vs_caffe"], 1.5)
    return targets


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [["-" if c is None else format(c, ".3g") if isinstance(c, float) else str(c)
              for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


#: Printed under a table that shows a fraction of the mm peak above 100%.
ABOVE_PEAK_NOTE = (
    "* above 100%: the counted FLOPs ran faster than the timed matrix multiply. FLOPs are "
    "counted per operation (FlopCounterMode, multiply-add = 2), so a kernel doing less work "
    "than counted (Winograd convolutions, TF32 tensor cores) or an mm slowed by other work "
    "shows more than its share; the column is that ratio, not hardware utilisation.")


def _peak_cell(v: float | None, above: list[bool]) -> str:
    """The "of mm peak" cell: a percentage, never above 100% (noted with * instead)."""
    if v is None:
        return "-"
    if v > 1.0:
        above.append(True)
        return ">100%*"
    return f"{v:.0%}"


def repeated_settings(report: dict[str, Any]) -> list[str]:
    """Settings that two tables both time, each with its two medians (one line each)."""
    inference = {(r["device"], r["model"], r["geometry"], tuple(r["size"]), r["batch"]): r
                 for r in report["inference"]}
    fast = {"+gemm fc6/fc7": "same", "caffe fast": "caffe"}  # their geometry's default path
    timed = [(o["device"], fast.get(r["variant"]), o["size"], r["median_s"],
              f"Fast paths ({r['variant']})") for o in report["options"] for r in o["rows"]]
    timed += [(ev["device"], "same", ev["size"], ev["model_only"]["median_s"],
               "Evaluation (model_only, plus an argmax)") for ev in report["evaluation"]]
    lines = []
    for device, geometry, size, median, where in timed:
        twin = inference.get((device, "fcn8s", geometry, tuple(size), 1))
        if twin is not None:
            lines.append(f"[{device}] fcn8s {geometry} {_size(size)} batch 1: "
                         f"{twin['median_s']:.3g} s in Inference, {median:.3g} s in {where}")
    return lines


def format_report(report: dict[str, Any], targets: bool = False) -> str:
    """The printed form of :func:`run_suite`'s result: one table per section.

    ``targets`` adds the table of design goals (:func:`check_targets`); the JSON always has it.
    """
    m, config = report["machine"], report["config"]
    above: list[bool] = []
    parts = [f"torch {m['torch']}, {m['threads']} threads, {m['cpu']} "
             f"({', '.join(m['cpu_flags']) or 'no avx512/amx'}); "
             f"{config['clock']} clock, {config['repeats']} interleaved "
             f"repeats after {config['warmup']} warm-up"]
    peaks, size = m.get("mm_peak_gflop_per_s") or {}, config.get("peak_size", "?")
    if peaks:  # what the "of mm peak" columns divide by
        parts.append(f"mm peak GFLOP/s, what \"of mm peak\" divides by (a {size}×{size} torch.mm "
                     "timed in the same interleaved rounds as each row; median over the rows): "
                     + ", ".join(f"{k} {v:.3g}" for k, v in peaks.items()))
    parts += _inference_table(report, above) + _training_table(report)
    for ev in report["evaluation"]:
        parts += _evaluation_tables(ev)
    for opts in report["options"]:
        parts += _options_table(opts, above)
    if above:
        parts.append(ABOVE_PEAK_NOTE)
    repeated = repeated_settings(report)
    if repeated:
        parts.append("\nTimed in two tables (each table is its own interleaved run, so absolute "
                     "times follow the machine's load at that moment; compare ratios within a "
                     "table, not times across tables):")
        parts.extend(f"  {line}" for line in repeated)
    if targets and report["targets"]:
        parts.append("\nTargets: speed ratios the fast paths were designed to reach (met = "
                     "value >= goal). Measured on this machine: a NO says how this machine and "
                     "its load compare, not that a result is wrong")
        parts.append(_table(["target", "value", "goal", "met", "note"],
                            [[t["target"], t["value"], t["goal"], "yes" if t["met"] else "NO",
                              t["note"]] for t in report["targets"]]))
    busy = {k: v for k, v in m.get("other_processes_cpu_share", {}).items() if v is not None}
    if busy:
        parts.append("\nCPU share used by other processes during each section: "
                     + ", ".join(f"{k} {v:.0%}" for k, v in busy.items())
                     + (" (wall-clock ratios unreliable above ~10%)"
                        if max(busy.values()) > 0.1 and config["clock"] == "wall" else ""))
    parts += [f"not measured: {note}" for note in report["not_measured"]]
    return "\n".join(parts)


def _inference_table(report: dict[str, Any], above: list[bool]) -> list[str]:
    if not report["inference"]:
        return []
    peak_size = report["config"]["peak_size"]
    return [
        "\nInference (float32, inference_mode, default fast paths); of mm peak = GFLOP/s / a "
        f"{peak_size}×{peak_size} float32 torch.mm timed in the same round-robin",
        _table(["device", "model", "geometry", "size", "batch", "median s", "spread", "img/s",
                "GFLOP", "GFLOP/s", "of mm peak", "same/caffe", "peak MiB"],
               [[r["device"], r["model"], r["geometry"], _size(r["size"]), r["batch"],
                 r["median_s"], f"{r['spread']:.0%}", r["images_per_s"], r.get("gflop"),
                 r.get("gflop_per_s"), _peak_cell(r.get("fraction_of_mm_peak"), above),
                 r.get("speedup_vs_caffe"),
                 round(r.get("cuda_max_allocated_mib", r["peak_rss_mib"]))]
                for r in report["inference"]])]


def _training_table(report: dict[str, Any]) -> list[str]:
    if not report["training"]:
        return []
    return [
        "\nTraining step (SGD, cross-entropy, float32)",
        _table(["device", "model", "geometry", "crop", "batch", "median s", "spread", "img/s",
                "GFLOP", "GFLOP/s", "same/caffe"],
               [[r["device"], r["model"], r["geometry"], r["crop"][0], r["batch"],
                 r["median_s"], f"{r['spread']:.0%}", r["images_per_s"], r.get("gflop"),
                 r.get("gflop_per_s"), r.get("speedup_vs_caffe")] for r in report["training"]])]


def _evaluation_tables(ev: dict[str, Any]) -> list[str]:
    parts = [f"\nEvaluation pipeline ({ev['device']}, FCN-8s same, {ev['images']} images "
             f"{_size(ev['size'])})",
             _table(["stage", "img/s", "median s", "spread"],
                    [[k, ev[k]["images_per_s"], ev[k]["median_s"], f"{ev[k]['spread']:.0%}"]
                     for k in ("pipeline", "model_only")]),
             f"pipeline / model-only: {ev['pipeline_fraction_of_model_only']:.1%}"]
    if ev.get("loader_options"):
        parts.append(_table(["DataLoader", "img/s", "spread"],
                            [[r["setting"], r.get("images_per_s"),
                              f"{r['spread']:.0%}" if "spread" in r else r.get("note")]
                             for r in ev["loader_options"]]))
    return parts


def _options_table(opts: dict[str, Any], above: list[bool]) -> list[str]:
    return [
        f"\nFast paths ({opts['device']}, FCN-8s, batch 1, {_size(opts['size'])}); each row "
        "adds to the one above unless named caffe",
        _table(["variant", "dtype", "median s", "spread", "GFLOP/s", "of mm peak", "vs plain",
                "vs caffe plain", "max|Δ|", "argmax %"],
               [[r["variant"], r["dtype"], r["median_s"], f"{r['spread']:.0%}",
                 r["gflop_per_s"], _peak_cell(r.get("fraction_of_mm_peak"), above),
                 r["speedup_vs_plain_same"], r["speedup_vs_caffe_plain_fp32"],
                 r["max_abs_diff"], f"{r['argmax_agreement_pct']:.2f}"] for r in opts["rows"]]),
        f"cudnn.benchmark: {opts['cudnn_benchmark']}; "
        f"torch.compile: {opts.get('torch_compile', '-')}"]

