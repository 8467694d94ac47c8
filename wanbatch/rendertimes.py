"""A learned render-time distribution, from interval-censored polls. Pure.

A task last seen unfinished at render age ``lo`` and then finished at age ``hi`` rendered for
some time in ``(lo, hi]``. Each such interval counts as a uniform spread over itself, widened
while samples are few (``widen`` + ``widen_few`` / sqrt(n + 1) of itself), and a Pareto-like
tail of weight 1 / (n + 1) (hazard ``tail_hazard`` / age) is mixed in beyond the renders seen,
so a new render longer than all seen is neither impossible nor a wall. The last ``window``
finishes are kept, so a server that slows down is followed. The planner asks two things: the
CDF at an age, and ``age_at_waste`` (see ``planner.py``), each in O(knots).
"""

from __future__ import annotations

import bisect
import math
from collections import deque


class RenderTimes:
    """A learned render-time distribution: a mixture of uniform intervals, one per finish.

    ``cdf`` is kept as a piecewise-linear function on ``knots`` quantiles, rebuilt when a tenth
    of the window is new, so asking it is O(knots) however many tasks are in flight.
    """

    def __init__(
        self,
        *,
        window: int = 256,
        knots: int = 48,
        widen: float = 0.05,
        widen_few: float = 0.3,
        tail_hazard: float = 1.0,
    ) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)
        self._knots = knots
        self._widen = (widen, widen_few)
        self._alpha = tail_hazard
        self._fresh = 0
        self.xs: list[float] = []  # ages
        self.ps: list[float] = []  # F at those ages, 0 ... 1
        self.median = 0.0

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, lo: float, hi: float) -> None:
        """One task finished after more than ``lo`` and at most ``hi`` seconds of rendering."""
        lo = max(0.0, lo)
        hi = max(hi, lo + 1e-6)
        self._samples.append((lo, hi))
        self._fresh += 1
        if not self.xs or self._fresh * 10 >= len(self._samples):
            self._rebuild()

    def _rebuild(self) -> None:
        self._fresh = 0
        n = len(self._samples)
        widen = self._widen[0] + self._widen[1] / math.sqrt(n + 1)
        # The mixture of uniforms has a piecewise-linear CDF whose slope changes at every
        # endpoint: sweep the endpoints once, then keep the ages at evenly spaced probabilities.
        edges: list[tuple[float, float]] = []
        for lo, hi in self._samples:
            lo, hi = lo * (1 - widen), hi * (1 + widen)
            density = 1.0 / (n * (hi - lo))
            edges.append((lo, density))
            edges.append((hi, -density))
        edges.sort()
        targets = [i / self._knots for i in range(1, self._knots)]
        xs = [edges[0][0]]
        slope = 0.0
        p = 0.0
        x = edges[0][0]
        t = 0
        for edge, change in edges:
            if slope > 0:
                p_next = p + slope * (edge - x)
                while t < len(targets) and targets[t] <= p_next:
                    xs.append(x + (targets[t] - p) / slope)
                    t += 1
                p = p_next
            x = edge
            slope += change
        while len(xs) < self._knots:
            xs.append(x)
        xs.append(edges[-1][0])
        ps = [i / self._knots for i in range(self._knots + 1)]
        self.median = median = xs[self._knots // 2]
        # A new render longer than all n seen has a chance of about 1 / (n + 1): mix in that much
        # of a Pareto tail (hazard tail_hazard / age, the same median), on knots spaced by
        # sqrt(2) up to 64 x the longest render, so the hazard has no wall at the last render.
        weight = 1.0 / (n + 1)
        scale = median * 0.5 ** (1 / self._alpha)
        grid = []
        g, top = scale, xs[-1] * 64
        while g < top:
            grid.append(g)
            g *= math.sqrt(2)
        self.xs, self.ps = xs, ps
        merged = sorted(set(xs) | set(grid))
        mixed = [
            (1 - weight) * self.cdf(x)
            + weight * (1 - (scale / x) ** self._alpha if x > scale else 0)
            for x in merged
        ]
        mixed[-1] = 1.0
        self.xs, self.ps = merged, mixed

    def cdf(self, age: float) -> float:
        xs = self.xs
        if age <= xs[0]:
            return 0.0
        if age >= xs[-1]:
            return 1.0
        i = bisect.bisect_right(xs, age)
        x0, x1 = xs[i - 1], xs[i]
        p0, p1 = self.ps[i - 1], self.ps[i]
        return p0 + (p1 - p0) * (age - x0) / (x1 - x0) if x1 > x0 else p1

    def age_at_waste(self, since: float, waste: float) -> float | None:
        """The age at which a task unfinished at ``since`` has sat done ``waste`` s on average.

        None when the task is older than (nearly) every render seen: the tail rule decides.
        """
        base = self.cdf(since)
        alive = 1.0 - base
        if alive < 0.02:
            return None
        target = waste * alive  # in units of ∫ (F(u) - F(since)) du
        xs, ps = self.xs, self.ps
        i = bisect.bisect_right(xs, since)
        x, p = since, base
        acc = 0.0
        while i < len(xs):
            x1, p1 = xs[i], ps[i]
            if x1 <= x:
                i += 1
                continue
            slope = (p1 - p) / (x1 - x)
            h0 = p - base
            area = (h0 + (p1 - base)) / 2 * (x1 - x)
            if acc + area >= target:
                need = target - acc
                # Solve h0*d + slope*d^2/2 = need for d >= 0.
                if slope <= 1e-12:
                    d = need / h0 if h0 > 0 else x1 - x
                else:
                    d = (-h0 + math.sqrt(h0 * h0 + 2 * slope * need)) / slope
                return x + d
            acc += area
            x, p = x1, p1
            i += 1
        return x + (target - acc) / alive  # past every render seen, F is 1
