"""The phases of a training or update job, in order, and the `progress` each one starts at.

The worker reports `loading` (reading the rows) and `storing` (saving the version) itself; the
fit child reports `evaluating` (the held-out fit, skipped on small data) and `fitting` (the
final fit on every row). The fractions are rough shares of a typical job's time: the fits
dominate, so they get most of the range.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class Phase(enum.StrEnum):
    LOADING = "loading"
    EVALUATING = "evaluating"
    FITTING = "fitting"
    STORING = "storing"


PROGRESS: dict[Phase, float] = {
    Phase.LOADING: 0.05,
    Phase.EVALUATING: 0.2,
    Phase.FITTING: 0.5,
    Phase.STORING: 0.9,
}

PhaseReport = Callable[[Phase], None]
"""Called as a phase starts; it must be quick (it runs inside the fit)."""
