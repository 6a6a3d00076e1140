"""Real-time scheduling for the threads PortAudio runs the compiled callbacks on.

Input: the pthread ids the compiled callbacks record (`StreamCounters.thread`), a SCHED_FIFO priority
(`audio.callback_priority`). Output: those threads under SCHED_FIFO, so that neither the worker nor
another process can take the CPU from a callback halfway through (the audio server's whole cycle
waits for it), unless they already have a real-time policy (a real-time JACK gives one to its clients:
then nothing changes). Where the system refuses (no privilege), a one-line reason; nothing else changes.

`server.audio_io.DeviceAudio` promotes only the threads of compiled streams: a Python callback under
SCHED_FIFO would still wait for the GIL, held by a thread it now outranks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
_PTHREAD_T = ctypes.c_ulong  # Linux: unsigned long; macOS: a pointer (the same size)
_REALTIME = {getattr(os, "SCHED_FIFO", -1), getattr(os, "SCHED_RR", -1)} - {-1}


def _policy(thread: int) -> tuple[int, str]:
    policy, param = ctypes.c_int(0), (ctypes.c_int * 4)()
    err = _LIBC.pthread_getschedparam(_PTHREAD_T(thread), ctypes.byref(policy), param)
    return policy.value, (f"pthread_getschedparam: {os.strerror(err)}" if err else "")


def is_realtime(thread: int) -> bool:
    """True if `thread` runs under SCHED_FIFO or SCHED_RR."""
    policy, why = _policy(thread)
    return not why and policy in _REALTIME


def promote(thread: int, priority: int) -> str:
    """Put `thread` (a live pthread id) under SCHED_FIFO at `priority`, unless it is real-time already.
    '' when it runs real-time; else why not (one line)."""
    fifo = getattr(os, "SCHED_FIFO", None)
    if fifo is None:
        return "this system has no SCHED_FIFO"
    policy, why = _policy(thread)
    if why:
        return why
    if policy in _REALTIME:
        return ""
    param = (ctypes.c_int * 4)(priority)  # struct sched_param: the priority first (macOS pads it)
    err = _LIBC.pthread_setschedparam(_PTHREAD_T(thread), fifo, param)
    if err:
        return f"SCHED_FIFO {priority} refused: {os.strerror(err)} (an rtprio limit allows it)"
    return ""
