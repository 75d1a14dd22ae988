"""Request ids on every answer and in the access line, and the Prometheus metrics at /metrics."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from fcnseg.inference import Segmenter
from fcnseg.serve import create_app
from fcnseg.serve.metrics import MAX_REQUEST_ID_CHARS

parser = pytest.importorskip("prometheus_client.parser")

MADE_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def client(segmenter: Segmenter) -> Iterator[TestClient]:
    with TestClient(create_app(segmenter, max_upload_bytes=200_000, max_pixels=96 * 96)) as c:
        yield c


def _png(make_image, height: int = 32, width: int = 32) -> dict:
    return {"image": ("a.png", make_image(height, width)[1], "image/png")}


def _samples(client: TestClient) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, its labels): value}`` of ``GET /metrics``, parsed."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parser.text_string_to_metric_families(r.text) for s in family.samples}


def _requests(samples: dict, route: str, status: str) -> float:
    return samples.get(("fcnseg_requests_total",
                        frozenset({"route": route, "status": status}.items())), 0.0)


def test_a_segmented_image_echoes_the_clients_request_id(client, make_image):
    r = client.post("/v1/segment", files=_png(make_image), headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(("send", "status"), [
    ({"content": b"{}", "headers": {"Content-Type": "application/json"}}, 415),
    ({"content": b"\x89PNG\r\n\x1a\n broken", "headers": {"Content-Type": "image/png"}}, 400),
    ({"content": bytes(300_000), "headers": {"Content-Type": "image/png"}}, 413),
    ({"params": {"format": "gif"}, "content": b"x", "headers": {"Content-Type": "image/png"}},
     422)])
def test_an_error_carries_the_request_id_in_its_header_and_body(client, send, status):
    request = {**send, "headers": {**send["headers"], "X-Request-ID": "req-7"}}
    r = client.post("/v1/segment", **request)
    assert r.status_code == status
    assert r.headers["x-request-id"] == "req-7"
    assert r.json()["request_id"] == "req-7" and isinstance(r.json()["detail"], str)


def test_an_unknown_path_404_carries_the_request_id(client):
    r = client.get("/nowhere", headers={"X-Request-ID": "lost-1"})
    assert (r.status_code, r.headers["x-request-id"], r.json()["request_id"]) == (
        404, "lost-1", "lost-1")


def test_a_full_queue_503_carries_the_request_id(segmenter, make_image, monkeypatch):
    app = create_app(segmenter, batching=False)
    monkeypatch.setattr(app.state.service.admission, "try_admit", lambda: False)
    with TestClient(app) as c:
        r = c.post("/v1/segment", files=_png(make_image), headers={"X-Request-ID": "busy-1"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.headers["x-request-id"] == r.json()["request_id"] == "busy-1"


def test_an_unexpected_exception_is_a_500_with_the_request_id(segmenter, make_image,
                                                               monkeypatch):
    app = create_app(segmenter, batching=False)

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(app.state.service, "model_info", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/model", headers={"X-Request-ID": "bug-1"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == r.json()["request_id"] == "bug-1"


def test_a_request_without_an_id_gets_a_new_one_each(client):
    first, second = client.get("/healthz"), client.get("/healthz")
    assert MADE_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("given", ["x" * (MAX_REQUEST_ID_CHARS + 1), "two words", "tab\there",
                                   "caf\xe9"])
def test_an_oversized_or_unprintable_request_id_is_replaced(client, given):
    r = client.get("/healthz", headers={"X-Request-ID": given.encode("latin-1")})
    assert MADE_ID.fullmatch(r.headers["x-request-id"]), r.headers["x-request-id"]


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [rec.getMessage() for rec in caplog.records if rec.name == "fcnseg.serve.access"]


def test_the_access_line_carries_the_request_id_and_image_size(segmenter, make_image,
                                                               live_server, caplog):
    server = live_server(create_app(segmenter, batching=False))
    access = logging.getLogger("fcnseg.serve.access")  # not propagated: the server's handler
    access.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="fcnseg.serve.access"):
            r = httpx.post(f"{server.url}/v1/segment?token=secret", files=_png(make_image, 40, 24),
                           headers={"X-Request-ID": "trace-42"}, timeout=30)
            assert r.status_code == 200
            # The server writes the line after the answer is sent: wait for it, not for a race.
            deadline = time.monotonic() + 30
            while not _access_lines(caplog) and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        access.removeHandler(caplog.handler)
    lines = _access_lines(caplog)
    assert len(lines) == 1, lines
    assert re.fullmatch(r'request_id=trace-42 image=24x40 127\.0\.0\.1:\d+ - '
                        r'"POST /v1/segment HTTP/1\.1" 200 \d+\.\d ms', lines[0]), lines


def test_metrics_count_a_200_and_a_415_with_the_images_and_pixels(client, make_image):
    assert client.post("/v1/segment", files=_png(make_image, 20, 30)).status_code == 200
    assert client.post("/v1/segment", content=b"{}",
                       headers={"Content-Type": "application/json"}).status_code == 415
    samples = _samples(client)
    assert _requests(samples, "/v1/segment", "200") == 1
    assert _requests(samples, "/v1/segment", "415") == 1
    assert samples[("fcnseg_images_segmented_total", frozenset())] == 1
    assert samples[("fcnseg_pixels_segmented_total", frozenset())] == 20 * 30
    count = ("fcnseg_request_duration_seconds_count", frozenset({"route": "/v1/segment"}.items()))
    assert samples[count] == 2


def test_metrics_count_refusals_by_reason(client, make_image):
    client.post("/v1/segment", files=_png(make_image, 100, 100))  # over max_pixels
    client.post("/v1/segment", content=bytes(300_000), headers={"Content-Type": "image/png"})
    refused = _samples(client)[("fcnseg_requests_refused_total",
                                frozenset({"reason": "too_large"}.items()))]
    assert refused == 2


def test_metrics_give_the_model_and_the_requests_in_flight(client, segmenter, checkpoint_path):
    samples = _samples(client)
    info = next(labels for (name, labels) in samples if name == "fcnseg_model_info")
    assert dict(info) == {"name": checkpoint_path.name, "arch": segmenter.arch,
                          "classes": str(segmenter.num_classes),
                          "precision": segmenter.describe()["precision"]}
    assert samples[("fcnseg_requests_in_flight", frozenset())] == 1  # this scrape


def test_unknown_paths_are_counted_under_one_route_label(client):
    for path in ("/a", "/b", "/wp-login.php"):
        client.get(path)
    assert _requests(_samples(client), "unmatched", "404") == 3


def test_two_apps_in_one_process_count_separately(segmenter):
    with TestClient(create_app(segmenter)) as first, TestClient(create_app(segmenter)) as second:
        first.get("/healthz")
        first.get("/healthz")
        second.get("/healthz")
        assert _requests(_samples(first), "/healthz", "200") == 2
        assert _requests(_samples(second), "/healthz", "200") == 1


def test_the_services_own_files_and_schema_are_counted_under_their_routes(client):
    """The page's files (the /static mount) and /openapi.json are the service's, not
    ``unmatched``; a missing static file is a 404 of /static."""
    for path in ("/static/app.js", "/static/style.css", "/static/missing.js", "/openapi.json"):
        client.get(path)
    samples = _samples(client)
    assert _requests(samples, "/static", "200") == 2
    assert _requests(samples, "/static", "404") == 1
    assert _requests(samples, "/openapi.json", "200") == 1
    assert not any(dict(labels).get("route") == "unmatched" for _, labels in samples)


def test_metrics_answer_in_the_text_format_with_the_created_series_the_docs_name(client):
    # docs/serve.md names both: prometheus_client's content type and its _created series.
    from prometheus_client import CONTENT_TYPE_LATEST

    client.get("/healthz")
    r = client.get("/metrics")
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST
    assert re.search(r'^fcnseg_requests_created\{route="/healthz",status="200"\} ', r.text, re.M)
