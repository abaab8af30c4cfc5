"""pytest-timeout, made to see green threads.

Under eventlet every "thread" is a greenlet in one OS thread, so pytest-timeout's own
dump shows nothing useful and its SIGALRM would fire inside the hub. This plugin takes
over its timer (the ``pytest_timeout_set_timer`` / ``pytest_timeout_cancel_timer``
hooks) with a real OS thread that, when a test outlives its timeout, prints the stack
of every greenlet and ends the run, so a hang costs minutes and says where it hung.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
import warnings
from typing import Any

import greenlet

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from eventlet import patcher  # noqa: E402

_threading = patcher.original("threading")


def dump_green_stacks(out: Any = None) -> None:
    out = out or sys.__stderr__
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and obj.gr_frame is not None:
            out.write(f"\n--- greenlet {obj!r}\n")
            out.write("".join(traceback.format_stack(obj.gr_frame)))
    for ident, frame in sys._current_frames().items():
        out.write(f"\n--- OS thread {ident}\n")
        out.write("".join(traceback.format_stack(frame)))
    out.flush()


def _expire(item: Any, seconds: float) -> None:
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)  # else fd 2 goes to pytest's capture file, lost on exit
        out, err = capture.read_global_capture()
        sys.stderr.write(f"\n+++ captured output of {item.nodeid}\n{out}{err}")
    sys.stderr.write(f"\n+++ {item.nodeid} still running after {seconds:.0f} s: every green thread follows\n")
    dump_green_stacks(sys.stderr)
    os._exit(1)


def pytest_timeout_set_timer(item: Any, settings: Any) -> bool | None:
    if not settings.timeout:
        return None
    timer = _threading.Timer(settings.timeout, _expire, (item, settings.timeout))
    timer.daemon = True
    timer.start()
    item._green_timeout_timer = timer
    return True


def pytest_timeout_cancel_timer(item: Any) -> bool | None:
    timer = getattr(item, "_green_timeout_timer", None)
    if timer is None:
        return None
    timer.cancel()
    del item._green_timeout_timer
    return True
