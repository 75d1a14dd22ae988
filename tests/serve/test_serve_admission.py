"""Admission: places for running and waiting requests, and the words used to report them."""

from __future__ import annotations

import pytest

from fcnseg.serve.admission import Admission
from fcnseg.serve.errors import RequestError
from fcnseg.serve.limits import ServiceLimits


def test_admits_up_to_concurrency_plus_queue():
    admission = Admission(max_concurrency=2, max_queue=1)
    assert [admission.try_admit() for _ in range(4)] == [True, True, True, False]
    admission.release()
    assert admission.try_admit()


def test_busy_text_reports_the_numbers_healthz_reports():
    # Admitted but not yet holding a worker thread: 0 running, 3 waiting (not "2 running").
    admission = Admission(max_concurrency=2, max_queue=1)
    for _ in range(3):
        admission.try_admit()
    assert admission.load() == {"running": 0, "waiting": 3, "max_concurrency": 2,
                                "max_queue": 1}
    detail = admission.busy_detail()
    assert detail.startswith("server busy: all 3 places taken")
    assert "0 running, 3 waiting for a worker or having their image checked" in detail
    assert "max_concurrency 2" in detail and "max_queue 1" in detail


def test_place_is_503_when_full_and_given_back_after_the_block():
    admission = Admission(max_concurrency=1, max_queue=0)
    with admission.place():
        with pytest.raises(RequestError) as refused, admission.place():
            pass
        assert refused.value.status_code == 503
        assert refused.value.headers == {"Retry-After": "1"}
    assert admission.load()["waiting"] == 0
    with admission.place():
        assert admission.admitted == 1


def test_service_limits_refuse_a_queue_below_zero_naming_the_field():
    with pytest.raises(ValueError, match="max_queue"):
        ServiceLimits(max_queue=-1)
