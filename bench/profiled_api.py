"""`python -m service api` with its event loop profiled on demand (`python -m bench profile`).

    python -m bench.profiled_api STATS_PATH api

SIGUSR1 starts cProfile on the main thread (the event loop: where per-request overhead is
spent; estimator calls run on the prediction threads and are not seen); SIGUSR2 stops it and
writes the statistics to STATS_PATH, so a profile covers the load window only, not start-up
or training.
"""

from __future__ import annotations

import cProfile
import signal
import sys
from types import FrameType


def main(path: str, argv: list[str]) -> int:
    from service.__main__ import main as service_main

    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(path)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return service_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
