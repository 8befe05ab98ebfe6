"""A small module to try codenook on: `codenook complete examples/stats.py:25:12`."""

import math
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean of a non-empty sequence."""
    return sum(values) / len(values)


def variance(values: Sequence[float]) -> float:
    """Population variance."""
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / len(values)


def stddev(values: Sequence[float]) -> float:
    return math.sqrt(variance(values))


def zscores(values: Sequence[float]) -> list[float]:
    """How many standard deviations each value lies from the mean."""
    m, s = mean(values), stddev(values)
    return 
