"""``fcnseg serve --checkpoint PATH``: the web service and its page (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import os

from fcnseg.cli._checkpoint_options import add_allow_factory_option

NAME = "serve"
HELP = "Serve a checkpoint over HTTP: a segmentation API and a web page to try it."


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_allow_factory_option(p)
    # fcnseg.serve.limits imports no FastAPI, so --help works without the serve extra.
    from fcnseg.serve.limits import (
        DEFAULT_MAX_CONCURRENCY,
        DEFAULT_MAX_PIXELS,
        DEFAULT_MAX_QUEUE,
        DEFAULT_MAX_UPLOAD_BYTES,
    )

    p.add_argument("--checkpoint", required=True, help="checkpoint file to serve")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2**20,
                   help="largest upload accepted, in MiB (default: %(default)g); larger: 413")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="largest image accepted, width × height (default: %(default)d); "
                        "larger: 413")
    p.add_argument("--workers-concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY,
                   help="images segmented at once (default: %(default)d)")
    p.add_argument("--queue", type=int, default=DEFAULT_MAX_QUEUE,
                   help="requests that may wait for a worker; more get 503 (default: "
                        "%(default)d)")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="intra-op threads of torch (default: CPU cores divided by "
                        "--workers-concurrency, so concurrent requests do not oversubscribe)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from fcnseg.serve import create_app
    except ImportError as e:
        raise RuntimeError(f"fcnseg serve needs the 'serve' extra ({e.name} is missing): "
                           f"pip install 'fcnseg[serve]'") from None
    import torch

    from fcnseg.inference import Segmenter

    for name in ("workers_concurrency", "max_pixels", "port"):
        if getattr(args, name) < (0 if name == "port" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got "
                             f"{getattr(args, name)}")
    if args.queue < 0 or args.max_upload_mb <= 0:
        raise ValueError("--queue must be at least 0 and --max-upload-mb positive")
    threads = args.torch_threads or max(1, (os.cpu_count() or 1) // args.workers_concurrency)
    torch.set_num_threads(threads)
    segmenter = Segmenter.from_checkpoint(args.checkpoint, device=args.device)
    app = create_app(
        segmenter,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        max_concurrency=args.workers_concurrency,
        max_queue=args.queue,
    )
    print(f"serving {segmenter!r} from {args.checkpoint} on http://{args.host}:{args.port}/ "
          f"({args.workers_concurrency} at once, queue {args.queue}, {threads} torch threads)",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
