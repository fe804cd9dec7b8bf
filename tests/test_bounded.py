"""analysis.bounded: a computation in a forked child with a time limit, and the scheduler's
fallback to the source order when isl's scheduler runs past it."""

import os
import threading
import time

import pytest

import polypipe as pp
from polypipe.analysis import scheduling
from polypipe.analysis.bounded import ChildFailed, Overrun, run_bounded
from tests.kernels import polybench as pb


def test_result_text_comes_back_from_the_child():
    parent = os.getpid()
    assert run_bounded(lambda: f"{os.getpid() != parent} " + "x" * 200_000, 30) == \
        "True " + "x" * 200_000


def test_an_exception_in_the_child_is_raised_with_its_message():
    def boom():
        raise ValueError("no schedule here")

    with pytest.raises(ChildFailed, match="no schedule here"):
        run_bounded(boom, 30)


def test_a_computation_past_its_limit_is_killed():
    start = time.monotonic()
    with pytest.raises(Overrun, match="no result after 0.3 s"):
        run_bounded(lambda: time.sleep(30) or "late", 0.3)
    assert time.monotonic() - start < 5


def test_with_another_thread_running_it_runs_here_unbounded():
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        parent = os.getpid()
        assert run_bounded(lambda: str(os.getpid() == parent), 0.01) == "True"
    finally:
        stop.set()
        worker.join()


def test_scheduler_overrun_falls_back_to_the_source_order(monkeypatch):
    def overrun(compute, seconds):
        raise Overrun(f"no result after {seconds:g} s")

    monkeypatch.setattr(scheduling, "run_bounded", overrun)
    result = scheduling.compute_schedule(pp.kernel(pb.jacobi_2d))
    assert "did not finish within 60 s" in result.fallback
    assert not any(band.parallel for band in result.bands)
    assert "the source order (isl's scheduler did not finish" in result.describe()


def test_the_schedule_travels_back_with_its_parallel_members():
    result = scheduling.compute_schedule(pp.kernel(pb.jacobi_2d))
    assert result.fallback == ""
    assert any(band.parallel for band in result.bands)
