"""rate() and irate() of a steady counter as Prometheus computes them, for three ways of exposing it.

- ``exporter``: read at scrape time (postgres_exporter): the reference.
- ``untimestamped``: dbwatch before issue 22: the last collection's value, stamped by Prometheus at scrape time.
- ``stamped``: dbwatch now: the last collection's value with the collection's time; a repeat is dropped.

Collections every C seconds with the agent's ±10 % jitter, scrapes every S seconds at a fixed phase, a counter
growing at exactly 10/s, evaluation every second; rate() is Prometheus's extrapolatedRate (the 1.1 × average
spacing threshold, half a spacing otherwise), irate() the last two samples. Prints, per (C, S, range), the
99th percentile and the worst relative error, the share of points off by more than 10 % and irate()'s share
of zeros. docs/metrics-freshness.md quotes its output. Run: `.venv/bin/python bench/freshness_sim.py`.
"""

from __future__ import annotations

import random

RATE = 10.0
JITTER = 0.1  # agent/daemon.py's JITTER
CASES = ((15, 15, 60), (15, 5, 60), (15, 15, 120), (15, 5, 120), (15, 30, 120), (15, 15, 300),
         (2, 1, 60), (2, 2, 60), (2, 3, 60))
MODES = ("exporter", "untimestamped", "stamped")


def main() -> None:
    print(f"{'C':>3} {'S':>3} {'range':>5}  {'mode':14}  {'rate p99':>8} {'max':>6} {'>10%':>6}  "
          f"{'irate p99':>9} {'max':>6} {'zero':>5}")
    for collect, scrape, window in CASES:
        for mode in MODES:
            samples = exposed(collect, scrape, mode)
            rate, _ = errors(samples, window, False)
            irate, zeros = errors(samples, window, True)
            print(f"{collect:>3} {scrape:>3} {window:>4}s  {mode:14}  {pct(rate, .99):>8} {rate[-1]:>6.1%} "
                  f"{sum(e > .1 for e in rate) / len(rate):>6.1%}  {pct(irate, .99):>9} {irate[-1]:>6.1%} "
                  f"{zeros:>5.0%}")


def exposed(collect: float, scrape: float, mode: str, seconds: float = 6000, seed: int = 1
            ) -> list[tuple[float, float]]:
    """The (time, value) samples Prometheus stores."""
    rnd = random.Random(seed)
    collections, t = [], rnd.uniform(0, collect)
    while t < seconds:
        collections.append(t)
        t += collect * (1 + rnd.uniform(-JITTER, JITTER))
    phase = rnd.uniform(0, scrape)
    samples: list[tuple[float, float]] = []
    latest = -1
    for at in (phase + i * scrape for i in range(int(seconds / scrape))):
        while latest + 1 < len(collections) and collections[latest + 1] <= at:
            latest += 1
        if mode == "exporter":
            samples.append((at, RATE * at))
        elif latest >= 0 and mode == "untimestamped":
            samples.append((at, RATE * collections[latest]))
        elif latest >= 0 and (not samples or samples[-1][0] != collections[latest]):
            samples.append((collections[latest], RATE * collections[latest]))
    return samples


def errors(samples: list[tuple[float, float]], window: float, instant: bool) -> tuple[list[float], float]:
    """Sorted relative errors at every evaluation second after warm-up, and the share of zero results."""
    out, zeros = [], 0
    for at in range(300, int(samples[-1][0]) - 100):
        value = prom_rate([s for s in samples if at - window < s[0] <= at], at, window, instant)
        out.append(1.0 if value is None else abs(value - RATE) / RATE)
        zeros += value == 0
    return sorted(out), zeros / len(out)


def prom_rate(s: list[tuple[float, float]], at: float, window: float, instant: bool) -> float | None:
    if len(s) < 2:
        return None
    if instant:
        (t1, v1), (t2, v2) = s[-2], s[-1]
        return (v2 - v1) / (t2 - t1)
    (first_t, first_v), (last_t, last_v) = s[0], s[-1]
    increase, sampled = last_v - first_v, last_t - first_t
    average = sampled / (len(s) - 1)
    to_start, to_end = first_t - (at - window), at - last_t
    if increase > 0:
        to_start = min(to_start, sampled * first_v / increase)
    threshold = average * 1.1
    extended = sampled + (to_start if to_start < threshold else average / 2) + (
        to_end if to_end < threshold else average / 2)
    return increase * extended / sampled / window


def pct(values: list[float], q: float) -> str:
    return f"{values[int(len(values) * q)]:.1%}"


if __name__ == "__main__":
    main()
