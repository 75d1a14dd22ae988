"""``fcnseg serve`` under load: throughput with 1 and 8 concurrent clients, batched or not.

Serves a randomly initialised FCN-8s (same geometry, 21 classes; or ``--checkpoint``) with
uvicorn on 127.0.0.1, in this process, with the service's default limits, and times, interleaved
in one run (ratios of medians), ``--requests`` uploads of 500×375 JPEGs answered with label
PNGs:

- **model only**: the same Segmenter on the same images, decoded and normalised beforehand,
  one at a time (what one client at a time could at best get);
- **1 client**: one request after another;
- **8 clients**: eight at once, with the service's default batching (decided at start-up:
  on a CPU, only when a probe finds a batch faster per image than single passes);
- **8 clients, unbatched**: the same with batches of one image (``max_batch`` 1);
- **8 clients, always batched**: the requests waiting for the model always batched into one
  forward pass (up to the service's ``max_concurrency``), for reference.

It prints requests/s, each against the model alone, 8 clients against 1, the default against
unbatched, and the images per forward pass. Ratios are given two ways: of the medians, and
paired (the median over rounds of each round's ratio: a busy machine's load changes between
rounds far more than within one); the TARGET lines give the paired ones.

    python benchmarks/serve_load.py                   # ~4 minutes on 2 busy cores
    python benchmarks/serve_load.py --requests 8 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see fcnseg demo)

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import uvicorn  # noqa: E402
from PIL import Image  # noqa: E402

from fcnseg.bench.targets import print_target
from fcnseg.bench.timing import round_logger, time_interleaved  # noqa: E402
from fcnseg.inference import Segmenter  # noqa: E402
from fcnseg.serve import create_app  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from predict_pipeline import make_jpegs, random_checkpoint  # noqa: E402


class Server:
    """uvicorn serving ``app`` on a free loopback port in a background thread."""

    def __init__(self, app: object) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=16, help="uploads per timed pass")
    p.add_argument("--size", default="500x375", help="WIDTHxHEIGHT of the JPEGs")
    p.add_argument("--checkpoint", help="a checkpoint (default: a random FCN-8s, 21 classes)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients of the load")
    p.add_argument("--repeats", type=int, default=3, help="timed passes of each variant")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--quick", action="store_true",
                   help="8 requests, 2 repeats (for run_all --quick)")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.repeats = 8, 2
    width, height = (int(v) for v in args.size.lower().split("x"))

    work = Path(tempfile.mkdtemp(prefix="fcnseg-serve-bench-"))
    images = make_jpegs(work / "images", args.requests, width, height)
    uploads = [path.read_bytes() for path in images]
    checkpoint = Path(args.checkpoint) if args.checkpoint else random_checkpoint(
        work / "fcn8s_random.pt")
    seg = Segmenter.from_checkpoint(checkpoint, precision=args.precision)
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in images]
    tensors = [seg.preprocess(a) for a in arrays]
    print(f"{seg!r}, {torch.get_num_threads()} torch threads, {args.requests} JPEG uploads of "
          f"{width}×{height}, {args.clients} clients")

    app = create_app(seg)
    service = app.state.service
    default_batch = service.batcher.max_batch
    print(f"batching {service.batching.reason} (max_batch {default_batch})")

    def model_only() -> None:
        for x in tensors:
            seg.logits(x).argmax(1).cpu().numpy()

    with Server(app) as server, httpx.Client(base_url=server.url, timeout=600) as client, \
            ThreadPoolExecutor(args.clients) as pool:

        def send(body: bytes) -> None:
            r = client.post("/v1/segment", content=body, headers={"Content-Type": "image/jpeg"})
            r.raise_for_status()

        def load(clients: int, max_batch: int) -> None:
            service.batcher.max_batch = max_batch
            if clients == 1:
                for body in uploads:
                    send(body)
            else:
                list(pool.map(send, uploads))

        batch_stats: dict[str, dict] = {}

        def counted(name: str, clients: int, max_batch: int):
            def run() -> None:
                before = (service.batcher.stats.forward_passes, service.batcher.stats.images)
                load(clients, max_batch)
                stats = service.batcher.stats
                passes = stats.forward_passes - before[0]
                batch_stats[name] = {"forward_passes": passes,
                                     "images_per_pass": (stats.images - before[1]) / passes}
            return run

        many = f"{args.clients} clients"
        variants = {
            "model only": model_only,
            "1 client": counted("1 client", 1, default_batch),
            many: counted(many, args.clients, default_batch),
            f"{many}, unbatched": counted(f"{many}, unbatched", args.clients, 1),
            f"{many}, always batched": counted(f"{many}, always batched", args.clients,
                                               service.limits.max_concurrency),
        }

        times = time_interleaved(variants, warmup=1, repeats=args.repeats, progress=round_logger(
            lambda line: print(line, file=sys.stderr, flush=True), "interleaved rounds"))

    n = args.requests
    rate = {name: n / t.median for name, t in times.items()}
    print(f"\n{'variant':24s} {'req/s':>7s} {'of model':>9s} {'img/pass':>9s}   median s (spread)")
    for name, r in rate.items():
        per_pass = batch_stats.get(name, {}).get("images_per_pass")
        shown = f"{per_pass:9.2f}" if per_pass else f"{'-':>9s}"
        print(f"{name:24s} {r:7.3f} {r / rate['model only']:9.3f} {shown}   "
              f"{times[name].median:.2f} ({times[name].spread:.0%})")
    pairs = {f"{many} / 1 client": (many, "1 client"),
             "default / unbatched": (many, f"{many}, unbatched"),
             "always batched / unbatched": (f"{many}, always batched", f"{many}, unbatched"),
             f"{many} / model only": (many, "model only")}
    ratios = {name: rate[a] / rate[b] for name, (a, b) in pairs.items()}
    # Speed ratio of a over b in each round (b's seconds over a's), then their median.
    paired = {name: times[a].paired_speedup(times[b]) for name, (a, b) in pairs.items()}
    print(f"\n{'speed ratio':28s} {'medians':>8s} {'paired':>7s}")
    for name, value in ratios.items():
        print(f"{name:28s} {value:8.3f} {paired[name]:7.3f}")
    if default_batch == 1:
        print("(the service's default here is batches of one, as the probe decided: default / "
              "unbatched times one set-up twice, and shows the machine's noise)")
    # Under concurrent load the service should keep the model as busy as a plain loop does.
    print_target("serve_concurrent_over_model", paired[f"{many} / model only"], 0.90)
    # The default (batching decided at start-up) must be as fast as the better of the two fixed
    # choices, within the noise of a shared machine: paired per round against that choice.
    best = max((f"{many}, unbatched", f"{many}, always batched"), key=lambda k: rate[k])
    default_over_best = times[many].paired_speedup(times[best])
    print(f"default / the faster fixed choice ({best}): {default_over_best:.3f}")
    print_target("serve_default_over_best_batching", default_over_best, 0.95)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "segmenter": repr(seg), "requests": n, "size": [width, height],
            "clients": args.clients, "max_batch": default_batch,
            "batching_decision": service.batching.to_dict(),
            "threads": torch.get_num_threads(), "requests_per_s": rate, "ratios": ratios,
            "paired_ratios": paired,
            "batching": batch_stats,
            "timings": {k: v.as_dict() for k, v in times.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
