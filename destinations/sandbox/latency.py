"""The emulated answer time both emulators give their calls."""

from __future__ import annotations

import random
import time


def answer_after(arrived: float, latency: float, jitter: float = 0.0) -> None:
    """Wait until the call has taken `latency` seconds since it arrived, drawn uniformly
    from latency x [1 - jitter, 1 + jitter] (mean: latency). The latency is the whole answer
    time, the emulator's own processing included (as for a real API, whose processing is
    part of its latency): a 32,000-row async job processed in 0.6 s is not a 2.6-second
    call. Calls that all took exactly as long would move in lockstep and queue behind each
    other's processing, hence the jitter."""
    if jitter:
        latency *= random.uniform(1.0 - jitter, 1.0 + jitter)
    remaining = latency - (time.monotonic() - arrived)
    if remaining > 0:
        time.sleep(remaining)
