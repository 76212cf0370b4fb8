"""Paired statistics for quality benchmarks: ERL vs a baseline over seeds (needs scipy).

Each seed trains a pair of runs that differ only in the loss (same initial weights, same batches),
so the right test is on the per-seed differences ``d_i = erl_i - base_i``:

* mean and sample SD (``ddof = 1``) of ``d``;
* the 95 % confidence interval ``mean +- t_{0.975, n-1} * SD / sqrt(n)``;
* the paired t statistic ``mean / (SD / sqrt(n))`` and its two-sided p-value
  (:func:`scipy.stats.ttest_rel`);
* ``wins``: seeds where ERL scored higher;
* the minimum detectable effect: the true mean difference that a two-sided paired t-test at
  ``alpha = 0.05`` with these ``n`` seeds would detect with 80 % power, if the true SD were the
  measured one (exact, from the noncentral t distribution). A run whose |mean| is below it could
  not have told an effect of that size from noise.

:func:`seeds_needed` answers the planning question the other way round. For a family of
comparisons, :func:`holm_adjust` gives Holm's step-down adjusted p-values and :func:`holm_levels`
the confidence level of each comparison's interval (:func:`mean_ci`) that agrees with them.
:func:`bootstrap_scene_ci` resamples test scenes to show how much of an effect rides on which
scenes were tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from erl_losses._extras import require

__all__ = [
    "PairedComparison",
    "bootstrap_scene_ci",
    "holm_adjust",
    "holm_levels",
    "mean_ci",
    "min_detectable_effect",
    "paired_comparison",
    "paired_t_power",
    "seeds_needed",
]


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of two methods over the same ``n`` seeds (``delta = erl - base``).

    Attributes:
        n: number of pairs.
        mean: mean of ``delta`` (same unit as the scores, e.g. dB).
        sd: sample standard deviation of ``delta`` (``ddof = 1``).
        ci_low, ci_high: 95 % confidence interval of the mean (t distribution, ``n - 1`` df).
        t: paired t statistic (``+-inf`` when ``sd == 0`` and ``mean != 0``, ``nan`` when both 0).
        p: two-sided p-value of ``mean == 0``, in [0, 1].
        wins: pairs with ``erl > base``; ``losses``: pairs with ``erl < base``.
        mde: minimum detectable effect at 80 % power and alpha 0.05 given ``sd`` and ``n``
            (same unit as ``mean``, >= 0).
    """

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    t: float
    p: float
    wins: int
    losses: int
    mde: float

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a JSON-ready dict."""
        return asdict(self)

    def summary(self, unit: str = "dB", digits: int = 2) -> str:
        """One line: mean [CI], t, p, wins and the detectable effect."""
        f = f"{{:+.{digits}f}}"
        return (
            f"{f.format(self.mean)} {unit} (95 % CI {f.format(self.ci_low)} to "
            f"{f.format(self.ci_high)}), SD {self.sd:.{digits}f}, t({self.n - 1}) = {self.t:+.2f}, "
            f"p = {self.p:.3g}, ERL higher in {self.wins}/{self.n}; detectable at 80 % power: "
            f"{self.mde:.{digits}f} {unit}"
        )


def _check_alpha_power(alpha: float, power: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"Expected alpha in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"Expected power in (0, 1), got {power}")


def paired_t_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of a two-sided paired t-test: P(reject) when the true mean difference is ``effect``.

    ``T ~ noncentral t(df = n - 1, nc = effect * sqrt(n) / sd)``; power is
    ``P(|T| > t_{1 - alpha / 2, n - 1})``. ``sd > 0``, ``n >= 2``.
    """
    stats = require("scipy.stats", "data")
    if not sd > 0:
        raise ValueError(f"Expected sd > 0, got {sd}")
    if n < 2:
        raise ValueError(f"Expected n >= 2, got {n}")
    _check_alpha_power(alpha, 0.5)
    df = n - 1
    critical = stats.t.ppf(1.0 - alpha / 2.0, df)
    nc = abs(effect) * math.sqrt(n) / sd
    # P(T < -c | nc) written as P(T > c | -nc): scipy's nct.cdf returns nan for some far tails.
    return float(stats.nct.sf(critical, df, nc) + stats.nct.sf(critical, df, -nc))


def min_detectable_effect(sd: float, n: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest true mean difference a two-sided paired t-test detects with ``power``.

    Solves :func:`paired_t_power` ``= power`` for the effect (``brentq``); ``0`` when ``sd == 0``.

    Args:
        sd: standard deviation of the paired differences, >= 0.
        n: number of pairs, >= 2.
        power, alpha: in (0, 1).
    """
    optimize = require("scipy.optimize", "data")
    _check_alpha_power(alpha, power)
    if sd < 0 or not math.isfinite(sd):
        raise ValueError(f"Expected a finite sd >= 0, got {sd}")
    if sd == 0:
        return 0.0
    # Power grows with the effect: double an upper bound until it is reached, then bisect.
    high = sd / math.sqrt(n)
    while paired_t_power(high, sd, n, alpha) < power:
        high *= 2.0
    return float(
        optimize.brentq(
            lambda d: paired_t_power(d, sd, n, alpha) - power, 0.0, high, xtol=1e-10 * sd
        )
    )


def seeds_needed(effect: float, sd: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """The fewest pairs ``n >= 2`` whose paired t-test detects ``effect`` with ``power``."""
    _check_alpha_power(alpha, power)
    if not effect > 0 or not sd > 0:
        raise ValueError(f"Expected effect > 0 and sd > 0, got {effect} and {sd}")
    n = 2
    while paired_t_power(effect, sd, n, alpha) < power:
        n += 1
    return n


def _differences(erl: Sequence[float], base: Sequence[float]) -> np.ndarray:
    a = np.asarray(erl, dtype=np.float64)
    b = np.asarray(base, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"Expected erl and base to be 1-D sequences of the same length, got shapes "
            f"{a.shape} and {b.shape}"
        )
    if a.size < 2:
        raise ValueError(f"Expected at least 2 pairs, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("Expected finite scores in erl and base, got nan or inf")
    return a - b


def paired_comparison(erl: Sequence[float], base: Sequence[float]) -> PairedComparison:
    """Compares paired scores (``erl[i]`` and ``base[i]`` from the same seed ``i``).

    Args:
        erl, base: per-seed scores (e.g. Average PSNR in dB), same length ``n >= 2``, finite.

    Returns:
        A :class:`PairedComparison` of ``erl - base``.

    Raises:
        ValueError: different lengths, fewer than 2 pairs, or non-finite scores.
    """
    stats = require("scipy.stats", "data")
    delta = _differences(erl, base)
    n = int(delta.size)
    mean = float(delta.mean())
    sd = float(delta.std(ddof=1))
    if sd > 0:
        result = stats.ttest_rel(np.asarray(erl, np.float64), np.asarray(base, np.float64))
        t, p = float(result.statistic), float(result.pvalue)
    else:  # all differences equal: no sampling noise to test against
        t = math.copysign(math.inf, mean) if mean != 0 else math.nan
        p = 0.0 if mean != 0 else 1.0
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return PairedComparison(
        n=n,
        mean=mean,
        sd=sd,
        ci_low=mean - half,
        ci_high=mean + half,
        t=t,
        p=p,
        wins=int((delta > 0).sum()),
        losses=int((delta < 0).sum()),
        mde=min_detectable_effect(sd, n),
    )


def mean_ci(delta: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The two-sided t confidence interval of the mean of ``delta`` (``n >= 2``) at ``level``."""
    stats = require("scipy.stats", "data")
    if not 0.0 < level < 1.0:
        raise ValueError(f"Expected level in (0, 1), got {level}")
    d = np.asarray(delta, dtype=np.float64)
    if d.ndim != 1 or d.size < 2 or not np.isfinite(d).all():
        raise ValueError(f"Expected >= 2 finite differences, got {d.tolist()!r}")
    half = float(stats.t.ppf(0.5 + level / 2.0, d.size - 1)) * float(d.std(ddof=1))
    half /= math.sqrt(d.size)
    return float(d.mean()) - half, float(d.mean()) + half


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the ``k``-th smallest of ``m``
    is ``max_{j <= k} min(1, (m - j + 1) p_(j))``. Reject at family level ``alpha`` where
    the adjusted p is <= ``alpha``."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"Expected p-values in [0, 1], got {list(pvalues)!r}")
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def holm_levels(pvalues: Sequence[float], alpha: float = 0.05) -> list[float]:
    """The confidence level of each comparison's interval under Holm's procedure.

    The comparison with the ``k``-th smallest p-value (``k`` from 1) gets ``1 - alpha / (m - k +
    1)`` while every smaller one was rejected; once one is not rejected, it and all later ones
    get ``1 - alpha / (m - k0 + 1)`` of that first non-rejection ``k0``. An interval then lies
    above (or below) 0 exactly when its Holm-adjusted p is <= ``alpha`` (for t-test p-values).
    """
    _check_alpha_power(alpha, 0.5)
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    levels = [0.0] * m
    stopped: float | None = None
    for rank, index in enumerate(order):
        level = 1.0 - alpha / (m - rank) if stopped is None else stopped
        levels[index] = level
        if stopped is None and p[index] > alpha / (m - rank):
            stopped = level
    return levels


def bootstrap_scene_ci(
    delta: np.ndarray, level: float = 0.95, draws: int = 4000, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the mean paired difference when the test scenes are resampled.

    Args:
        delta: ``(seeds, scenes)`` per-scene differences (arm - baseline, each scene's mean over
            its exposure levels), finite.
        level: interval level in (0, 1); draws: bootstrap resamples; seed: their generator.

    Returns:
        ``(low, high)``: the spread a different draw of test scenes of the same kind would give
        (the seeds are kept; their noise is what :func:`paired_comparison` covers).
    """
    d = np.asarray(delta, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] < 2 or not np.isfinite(d).all():
        raise ValueError(f"Expected a finite (seeds, scenes >= 2) array, got shape {d.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"Expected level in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    per_scene = d.mean(axis=0)
    picks = rng.integers(0, per_scene.size, size=(draws, per_scene.size))
    means = per_scene[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))
