"""The web page in a real headless browser: Debian's chromium driven by Playwright.

Playwright drives the system chromium through ``executable_path``; it never downloads a
browser. ``make test`` installs chromium where it can (scripts/install_browser.py); these tests
are skipped, saying why, only where chromium or the playwright package cannot be had.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from fcnseg.serve import create_app

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture skips, saying so
    expect = sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if sync_playwright is None:
        pytest.skip("the playwright package is not installed (pip install playwright; no "
                    "browser download needed)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no browser: {CHROMIUM} is missing (as root, `python "
                    f"scripts/install_browser.py` installs Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_at(browser, segmenter, live_server):
    """Open the service's page; yields (page, server url, list of requested URLs)."""
    server = live_server(create_app(segmenter, max_pixels=256 * 256))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.url + "/")
    yield page, server.url, requested
    context.close()


def test_upload_shows_overlay_heatmap_and_classes(page_at, segmenter, make_image):
    page, url, requested = page_at
    pixels, png = make_image(72, 96, seed=5)
    expected_counts = segmenter.predict(pixels).class_pixel_counts()
    expect(page.locator("#model-summary")).to_contain_text("fcn8s", timeout=10_000)
    assert page.locator("#heatmap-class option").count() == segmenter.num_classes

    page.set_input_files("#file", files=[{"name": "scene.png", "mimeType": "image/png",
                                          "buffer": png}])
    # The overlay appears: decoded at the image's size (a blank <img> has naturalWidth 0).
    expect(page.locator("#overlay")).to_have_js_property("naturalWidth", 96, timeout=20_000)
    expect(page.locator("#overlay")).to_have_js_property("naturalHeight", 72)
    expect(page.locator("#overlay")).to_be_visible()
    expect(page.locator("#heatmap")).to_have_js_property("naturalWidth", 96)
    expect(page.locator("#heatmap")).to_be_visible()
    assert "scene.png: 96×72 pixels" in page.locator("#status").inner_text()

    present = [name for name, n in expected_counts.items() if n > 0]
    assert page.locator("#legend tbody tr").count() == len(present)
    legend_names = page.locator("#legend tbody tr td:first-child").all_inner_texts()
    assert sorted(n.strip() for n in legend_names) == sorted(present)

    # Another class in the dropdown shows another heatmap.
    before = page.get_attribute("#heatmap", "src")
    shown = page.input_value("#heatmap-class")
    other = next(n for n in segmenter.class_names if n != shown)
    page.select_option("#heatmap-class", other)
    assert page.get_attribute("#heatmap", "src") != before

    # Everything came from the service itself: no CDN, no other host.
    fetched = [u for u in requested if not u.startswith(("data:", "blob:"))]
    assert fetched and all(u.startswith(url) for u in fetched), fetched


def test_refused_upload_shows_the_servers_reason(page_at):
    page, _, _ = page_at
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                          "buffer": b"not an image\n"}])
    status = page.locator("#status.error")
    status.wait_for(timeout=20_000)
    assert "415" in status.inner_text()
    assert page.locator("#results").is_hidden()


def test_photo_over_pixel_limit_is_scaled_down_in_the_browser(page_at, make_image):
    page, _, _ = page_at
    _, png = make_image(240, 320, seed=7)  # 76,800 pixels; the server takes 256×256 = 65,536
    page.set_input_files("#file", files=[{"name": "big.png", "mimeType": "image/png",
                                          "buffer": png}])
    expect(page.locator("#status")).to_contain_text("scaled down", timeout=20_000)
    expect(page.locator("#overlay")).not_to_have_js_property("naturalWidth", 0)
    width = page.locator("#overlay").evaluate("img => img.naturalWidth")
    height = page.locator("#overlay").evaluate("img => img.naturalHeight")
    assert width * height <= 256 * 256
    assert abs(width / height - 320 / 240) < 0.02


@pytest.fixture
def open_page(browser, live_server):
    """``open_page(segmenter)``: the page of a service of ``segmenter``, opened."""
    contexts = []

    def open_(segmenter):
        server = live_server(create_app(segmenter, max_pixels=256 * 256))
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto(server.url + "/")
        return page

    yield open_
    for context in contexts:
        context.close()


def test_a_model_with_several_heads_shows_each_heads_overlay_and_classes(
        open_page, siftflow_segmenter, make_image):
    page = open_page(siftflow_segmenter)
    pixels, png = make_image(64, 80, seed=5)
    expected = siftflow_segmenter.predict(pixels)
    expect(page.locator("#model-summary")).to_contain_text("semantic 33 + geometric 3",
                                                           timeout=10_000)
    assert page.locator("#heatmap-class optgroup").count() == 2
    assert page.locator("#heatmap-class option").count() == 33 + 3

    page.set_input_files("#file", files=[{"name": "scene.png", "mimeType": "image/png",
                                          "buffer": png}])
    expect(page.locator("#overlay-geometric")).to_have_js_property("naturalWidth", 80,
                                                                   timeout=20_000)
    expect(page.locator("#overlay")).to_have_js_property("naturalWidth", 80)
    expect(page.locator("#overlay-geometric")).to_be_visible()
    for table, head in (("#legend", "semantic"), ("#legend-geometric", "geometric")):
        present = [n for n, c in expected.heads[head].class_pixel_counts().items() if c > 0]
        names = page.locator(f"{table} tbody tr td:first-child").all_inner_texts()
        assert sorted(n.strip() for n in names) == sorted(present)
    page.select_option("#heatmap-class", "geometric/horizontal")
    expect(page.locator("#heatmap")).to_have_js_property("naturalWidth", 80)


def test_a_model_with_several_inputs_takes_one_file_per_modality(
        open_page, fusion_segmenter, make_image):
    page = open_page(fusion_segmenter)
    expect(page.locator("#file-hha")).to_be_attached(timeout=10_000)
    assert page.locator("#single-file").is_hidden()
    _, color = make_image(48, 64, seed=1)
    _, hha = make_image(48, 64, seed=2)
    page.set_input_files("#file-color", files=[{"name": "c.png", "mimeType": "image/png",
                                                "buffer": color}])
    assert page.locator("#segment-button").is_disabled()  # the hha image is still missing
    page.set_input_files("#file-hha", files=[{"name": "h.png", "mimeType": "image/png",
                                              "buffer": hha}])
    expect(page.locator("#overlay")).to_have_js_property("naturalWidth", 64, timeout=20_000)
    assert "c.png + h.png: 64×48 pixels" in page.locator("#status").inner_text()
    assert page.locator("#legend tbody tr").count() > 0


def test_a_labels_only_export_shows_overlay_and_classes_without_heatmaps(
        open_page, labels_only_segmenter, make_image):
    page = open_page(labels_only_segmenter)
    expect(page.locator("#model-summary")).to_contain_text("fcn8s", timeout=10_000)
    _, png = make_image(72, 96, seed=5)
    page.set_input_files("#file", files=[{"name": "scene.png", "mimeType": "image/png",
                                          "buffer": png}])
    expect(page.locator("#overlay")).to_have_js_property("naturalWidth", 96, timeout=20_000)
    assert "scene.png: 96×72 pixels" in page.locator("#status").inner_text()
    assert page.locator("#legend tbody tr").count() > 0
    expect(page.locator("#heatmap")).to_be_hidden()
    expect(page.locator("#heatmap-class")).to_be_hidden()
    expect(page.locator("#no-heatmaps")).to_be_visible()
    expect(page.locator("#no-heatmaps")).to_contain_text("No heatmaps for this model")
