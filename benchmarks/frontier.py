"""How good can a poll schedule be when the render-time distribution is known exactly?

For one task with render time T ~ F, a schedule of polls t1 < t2 < ... costs polls (each asked
while T is not yet seen) and detection delay (the first poll after T, minus T). Dynamic
programming over a time grid finds, for each price of a poll in seconds of delay, the schedule
that minimises E[polls] * price + E[delay]; this prints the frontier of (polls, delay) it traces,
beside a fixed 1 s poller. It is the yardstick for BENCHMARKS.md's slot-bound rows: no planner
that must learn F can do better than this line.

    python benchmarks/frontier.py
"""

from __future__ import annotations

import math
from collections.abc import Callable

STEP = 0.02


def lognormal(median: float, sigma: float) -> Callable[[float], float]:
    def cdf(t: float) -> float:
        if t <= 0:
            return 0.0
        return 0.5 * (1 + math.erf(math.log(t / median) / (sigma * math.sqrt(2))))

    return cdf


def uniform(lo: float, hi: float) -> Callable[[float], float]:
    return lambda t: min(1.0, max(0.0, (t - lo) / (hi - lo)))


def frontier_point(
    cdf: Callable[[float], float], price: float, horizon: float
) -> tuple[float, float]:
    """E[polls] and E[delay] of the optimal schedule at ``price`` (seconds of delay a poll)."""
    n = int(horizon / STEP) + 1
    times = [i * STEP for i in range(n)]
    f = [cdf(t) for t in times]
    area = [0.0] * n  # ∫0^t F
    for i in range(1, n):
        area[i] = area[i - 1] + (f[i] + f[i - 1]) / 2 * STEP
    value = [0.0] * n  # cost-to-go from "not done at times[i]"
    choice = [n - 1] * n
    for i in range(n - 2, -1, -1):
        alive = 1 - f[i]
        if alive < 1e-9:
            continue
        best, best_j = math.inf, n - 1
        for j in range(i + 1, n):
            waste = (area[j] - area[i] - (times[j] - times[i]) * f[i]) / alive
            cost = price + waste + (1 - f[j]) / alive * value[j]
            if cost < best:
                best, best_j = cost, j
            if waste > best:  # later polls only waste more
                break
        value[i], choice[i] = best, best_j
    polls = delay = 0.0
    i = 0
    while 1 - f[i] > 1e-6 and i < n - 1:
        j = choice[i]
        polls += 1 - f[i]  # this poll is made only if T was not seen by times[i]
        delay += area[j] - area[i] - (times[j] - times[i]) * f[i]
        i = j
    return polls, delay


def fixed_poller(
    cdf: Callable[[float], float], every: float, horizon: float
) -> tuple[float, float]:
    polls = delay = 0.0
    t = 0.0
    while t < horizon and 1 - cdf(t) > 1e-6:
        polls += 1 - cdf(t)
        steps = 50
        for k in range(steps):  # ∫_t^{t+every} (F(u) - F(t)) du
            u = t + (k + 0.5) * every / steps
            delay += (cdf(u) - cdf(t)) * every / steps
        t += every
    return polls, delay


def main() -> None:
    shapes = {
        "lognormal median 3.5 s, sigma 0.5": (lognormal(3.5, 0.5), 25.0),
        "uniform 2-6 s": (uniform(2.0, 6.0), 7.0),
    }
    for name, (cdf, horizon) in shapes.items():
        print(f"\n{name}")
        print("| schedule | polls / task | mean delay s | requests vs 1 s poller |")
        print("| --- | ---: | ---: | ---: |")
        base_polls, base_delay = fixed_poller(cdf, 1.0, horizon)
        print(f"| 1 s poller | {base_polls:.2f} | {base_delay:.3f} | 1.00 |")
        for price in (0.1, 0.15, 0.2, 0.25, 0.3):
            polls, delay = frontier_point(cdf, price, horizon)
            ratio = (polls + 1) / (base_polls + 1)  # a create each
            print(f"| optimal, price {price} s | {polls:.2f} | {delay:.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
