"""Run an isl computation that may not finish, with a wall-clock limit.

isl's scheduler is exponential in the nest depth on some inputs (a 5-deep nest of
``range(2)`` loops takes 30 s and then gives up; a 12-deep one does not finish in 10 minutes),
and isl's own operation budget (``set_max_operations``) does not count the work its scheduler
does there. The only bound that holds is time: the computation runs in a forked child
that writes its result as text, and the parent stops waiting at the deadline and kills it.

A fork costs about 3 ms. Where it is not safe or not there (no ``os.fork``; another thread
running, since a forked child inherits locks that thread may hold), the computation runs
unbounded in this process, as it would without this module.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time


class Overrun(Exception):
    """The computation did not finish within its limit."""


class ChildFailed(Exception):
    """The computation raised; the message is its exception's."""


def run_bounded(compute, seconds: float) -> str:
    """``compute()`` (returning text), in a child process killed after ``seconds``.

    An exception in ``compute`` is raised here as :class:`ChildFailed` with its message (as
    itself when it ran in this process); :class:`Overrun` when the limit passes first."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return compute()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the child: never returns
        os.close(read_end)
        _child(compute, write_end)
    os.close(write_end)
    try:
        data = _read_until(read_end, time.monotonic() + seconds)
    finally:
        os.close(read_end)
        _reap(pid)
    if data is None:
        raise Overrun(f"no result after {seconds:g} s")
    status, _, text = data.decode().partition("\n")
    if status != "ok":
        raise ChildFailed(text)
    return text


def _child(compute, write_end: int) -> None:
    try:
        payload = "ok\n" + compute()
    except BaseException as exc:                    # noqa: BLE001 - reported to the parent
        payload = f"error\n{exc}"
    try:
        view = memoryview(payload.encode())
        while view:
            view = view[os.write(write_end, view):]
    finally:
        os._exit(0)                                 # no atexit handlers, no pytest teardown


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything written to ``fd`` until the writer closes it, or None at the deadline."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int) -> None:
    """Kill the child if it still runs, and collect it."""
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
