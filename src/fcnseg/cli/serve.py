"""``fcnseg serve --checkpoint PATH``: the web service and its page (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch

from fcnseg.cli import options
from fcnseg.inference import Segmenter, resolve_device

# fcnseg.serve.limits imports no FastAPI, so --help works without the serve extra.
from fcnseg.serve.limits import (
    ServiceLimits,
    connection_cap,
    connection_cap_problem,
    too_few_connections,
)

NAME = "serve"
HELP = "Serve a checkpoint over HTTP: a segmentation API and a web page to try it."

#: The service's limits as options: (option, the :class:`ServiceLimits` field it sets, its
#: type, field units per option unit, help). Defaults are the field's, in the option's units.
_LIMIT_OPTIONS: tuple[tuple[str, str, type, int, str], ...] = (
    ("--max-upload-mb", "max_upload_bytes", float, 2**20,
     "largest upload accepted, in MiB (default: %(default)g); larger: 413"),
    ("--max-pixels", "max_pixels", int, 1,
     "largest image accepted, width × height (default: %(default)d); larger: 413"),
    ("--body-timeout", "body_timeout_s", float, 1,
     "seconds a client has to send its whole upload (default: %(default)g); slower: 408"),
    ("--workers-concurrency", "max_concurrency", int, 1,
     "requests decoded, segmented and encoded at once; with batching on, those waiting for "
     "the model at the same time share one forward pass (default: %(default)d)"),
    ("--queue", "max_queue", int, 1,
     "requests that may wait for a worker; more get 503 (default: %(default)d)"),
    ("--header-timeout", "header_timeout_s", float, 1,
     "seconds a connection has to send a request's headers (default: %(default)g); slower: "
     "408 and closed"),
    ("--max-connections", "max_connections", int, 1,
     "connections open at once, at most the open-file limit allows (default: %(default)d); "
     "more: 503 and closed; GET /healthz reports them"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_checkpoint(p, help="the checkpoint to serve: a file, a pretrained folder or "
                           "hf://user/repo[@rev]")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000,
                   help="port (default: 8000; 0 for any free port)")
    options.add_device(p)
    options.add_precision(p)
    options.add_compile(p)
    options.add_tiles(p, "a raster upload taller or wider than PIXELS (any upload to a model of "
                         "declared bands; a GeoTIFF for a colour model) is segmented by tiles "
                         "of PIXELS×PIXELS, blended as fcnseg predict --tile blends them: the "
                         "same labels as its label GeoTIFF (default: 512); photos and "
                         "TIFFs without georeferencing are segmented whole up to 4096×4096 "
                         "pixels, by these tiles beyond (without --tile: by tiles of 2048 "
                         "starting on the model's output stride, the labels of one pass)")
    defaults = ServiceLimits()
    for option, field, kind, unit, help_text in _LIMIT_OPTIONS:
        p.add_argument(option, type=kind, default=kind(getattr(defaults, field) / unit),
                       help=help_text)
    p.add_argument("--batching", choices=["auto", "on", "off"], default="auto",
                   help="whether requests waiting for the model share a forward pass: on, "
                        "off, or auto = on a GPU, and on a CPU only when a short probe at "
                        "start-up finds a batch faster per image than single passes")
    options.add_threads(p, "intra-op threads of the model: torch's for a checkpoint or a "
                           "TorchScript file, ONNX Runtime's for an .onnx one (default: the CPU "
                           "cores; one forward pass runs at a time; --torch-threads is the "
                           "same option)", "--torch-threads")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="least severe server messages shown")


def limits_from_args(args: argparse.Namespace) -> dict[str, int | float]:
    """The :class:`ServiceLimits` fields the limit options give (``--max-upload-mb`` in bytes),
    each checked as the service checks it: a ValueError in the option's name and units."""
    limits = {}
    for option, field, kind, unit, _ in _LIMIT_OPTIONS:
        given = getattr(args, option.removeprefix("--").replace("-", "_"))
        try:  # the field's type: whole bytes (a NaN or infinite size is none)
            limits[field] = type(getattr(ServiceLimits, field))(given * unit)
            ServiceLimits(**{field: limits[field]})
        except (ValueError, OverflowError):
            least = 0 if field == "max_queue" else 1 / unit  # in the option's units
            need = ("finite" if not math.isfinite(given) else f"at least {least:g}"
                    if kind is int or given > 0 else "more than 0")
            raise ValueError(f"{option} must be {need}, got {given}") from None
    return limits


def check_limit_options(args: argparse.Namespace) -> dict[str, int | float]:
    """The limits the options give (:func:`limits_from_args`), refused in one line before
    anything is loaded where the service cannot work with them, as is a negative port or an
    open-file limit that leaves fewer connections than a health check beside one request."""
    if args.port < 0:
        raise ValueError(f"--port must be positive, got {args.port}")
    limits = limits_from_args(args)
    too_few = too_few_connections(connection_cap(args.max_connections), args.max_connections)
    if too_few is not None:
        raise ValueError(too_few)
    return limits


def run(args: argparse.Namespace) -> int:
    try:
        from fcnseg.serve import create_app
        from fcnseg.serve.server import bind_socket, serve
    except ImportError as e:
        raise RuntimeError(f"fcnseg serve needs the 'serve' extra ({e.name} is missing): "
                           f"pip install 'fcnseg[serve]'") from None

    limits = check_limit_options(args)
    tiles = options.tiles_from_args(args)  # refused in one line before the model is loaded
    resolve_device(args.device)  # a GPU that is not there: predict's one line, before loading
    # Bind first: a busy port is reported before the model is loaded, never after "serving".
    sock = bind_socket(args.host, args.port)
    try:
        threads = args.threads or max(1, os.cpu_count() or 1)
        torch.set_num_threads(threads)  # ONNX Runtime sessions take torch's count (onnx_session)
        segmenter = Segmenter.from_checkpoint(args.checkpoint, device=args.device,
                                              precision=args.precision, **tiles)
        if args.compile:  # compiled and warmed up before the service says it is ready
            failure = segmenter.compile()
            if failure is not None:
                print(f"fcnseg serve: warning: {failure}", file=sys.stderr, flush=True)
        batching = {"auto": None, "on": True, "off": False}[args.batching]
        app = create_app(segmenter, **limits, batching=batching)
        port = sock.getsockname()[1]  # the kernel's choice for --port 0
        compiled = ", compiled" if segmenter.compiled is not None else ""
        service = app.state.service
        connections = service.connections.limit
        lowered = (f" (--max-connections {args.max_connections} lowered to fit the open-file "
                   f"limit)" if connections < args.max_connections else "")
        plural = "s" if connections != 1 else ""
        few = connection_cap_problem(connections, args.max_connections,
                                     args.workers_concurrency + args.queue)
        if few is not None:
            print(f"fcnseg serve: warning: {few}", file=sys.stderr, flush=True)
        runtime = "ONNX Runtime" if segmenter.runtime == "onnxruntime" else "torch"
        runs_on = f"{threads} {runtime} thread{'s' if threads != 1 else ''}"
        print(f"serving {segmenter!r} from {args.checkpoint} on http://{args.host}:{port}/ "
              f"({args.workers_concurrency} at once, queue {args.queue}, {runs_on}{compiled}, "
              f"at most {connections} connection{plural}{lowered}); batching "
              f"{service.batching.reason}", flush=True)
        serve(app, sock, service.limits, service.connections, log_level=args.log_level)
    finally:
        sock.close()
    return 0
