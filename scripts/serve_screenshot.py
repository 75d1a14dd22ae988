"""Take docs/images/serve.png: the served page after uploading a synthetic scene.

Usage: python scripts/serve_screenshot.py CHECKPOINT [--out docs/images/serve.png]

Serves CHECKPOINT (the demo's: ``fcnseg demo --out runs/demo``) with ``fcnseg serve``, opens
the page in headless chromium through Playwright, uploads a 400×300 synthetic validation
scene, picks the heatmap of the largest object class found and saves a screenshot.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from fcnseg.data import SyntheticSegmentation

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"fcnseg serve exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"{url} did not answer within {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images/serve.png"))
    parser.add_argument("--seed", type=int, default=11, help="synthetic scene seed")
    args = parser.parse_args()

    image, _ = SyntheticSegmentation(1, (300, 400), seed=args.seed)[0]
    scene = Path(tempfile.mkdtemp()) / "synthetic-scene.png"
    Image.fromarray(np.asarray(image)).save(scene)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "fcnseg", "serve", "--checkpoint",
                               str(args.checkpoint), "--port", str(port), "--device", "cpu"])
    try:
        wait_healthy(url, server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "/")
            expect(page.locator("#model-summary")).to_contain_text("fcn8s", timeout=30_000)
            page.set_input_files("#file", str(scene))
            expect(page.locator("#overlay")).to_have_js_property("naturalWidth", 400,
                                                                  timeout=60_000)
            # The heatmap of the largest object class in the legend (row 0 is background).
            names = page.locator("#legend tbody tr td:first-child").all_inner_texts()
            objects = [n.strip() for n in names if n.strip() != "background"]
            if objects:
                option = page.locator("#heatmap-class option", has_text=objects[0]).first
                page.select_option("#heatmap-class", option.get_attribute("value"))
                page.wait_for_timeout(3000)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
