"""Progress of long commands: a bar on a terminal, plain lines in a log file."""

from __future__ import annotations

import io

import pytest

from fcnseg.cli.progress import Progress


def test_without_a_terminal_a_line_says_the_count_speed_and_time_left() -> None:
    log = io.StringIO()  # a log file, not a terminal
    with Progress(4, unit="tile", desc="predict scene.tif", every=0.0, file=log) as bar:
        bar.update(1)
        bar.update(2)
        bar.update(1)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("predict scene.tif: 1/4 tiles (25%), ")
    assert lines[1].startswith("predict scene.tif: 3/4 tiles (75%), ") and "ETA" in lines[1]
    assert lines[2].startswith("predict scene.tif: 4 tiles in ") and lines[2].endswith("tiles/s)")
    assert len(lines) == 3  # the last item gets the closing line only


def test_the_last_line_counts_failed_items_apart() -> None:
    log = io.StringIO()
    with Progress(4, unit="image", desc="predict", every=3600.0, file=log) as bar:
        for failed in (False, True, False, True):
            bar.update(1, failed=failed)
    line = log.getvalue().splitlines()[-1]
    assert line.startswith("predict: 2 images in ") and line.endswith("images/s); 2 failed")


def test_lines_come_no_more_often_than_asked() -> None:
    log = io.StringIO()
    with Progress(1000, unit="image", desc="predict", every=3600.0, file=log) as bar:
        for _ in range(1000):
            bar.update(1)
    assert log.getvalue().splitlines() == [log.getvalue().splitlines()[-1]]
    assert log.getvalue().startswith("predict: 1000 images in ")


def test_no_progress_and_nothing_done_say_nothing() -> None:
    log = io.StringIO()
    with Progress(3, unit="tile", desc="predict", every=0.0, file=log, off=True) as bar:
        bar.update(3)
    with Progress(3, unit="tile", desc="predict", every=0.0, file=log):
        pass  # e.g. a raster complete already
    assert log.getvalue() == ""


def test_an_error_leaves_no_line_claiming_the_work_finished() -> None:
    log = io.StringIO()
    with pytest.raises(KeyboardInterrupt), \
            Progress(3, unit="tile", desc="predict", every=3600.0, file=log) as bar:
        bar.update(1)
        raise KeyboardInterrupt
    assert log.getvalue() == ""
