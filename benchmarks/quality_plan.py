"""What the quality benchmark runs: its modes, the loss arms compared and the paired jobs.

Used by ``benchmarks/quality.py``. A *job* is one training run; the jobs of one seed share the
net's initial weights and the batches (``erl_losses.training.train_net`` seeds both), so every
ERL arm is compared with the L1 baseline of the same seed (a paired design).
"""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = ("main", "ablation", "batch", "alpha")
NETS = ("ECLNet", "FECNet")


@dataclass(frozen=True)
class Settings:
    """One benchmark mode: data sizes, training length, seeds.

    Attributes:
        steps: Adam steps per run; crop_size: training crop side (px).
        render_size: side of the rendered images (px); train_crops / test_crops: rendered crops
            per training / held-out photo (each x 5 exposure levels; 7 training and 3 held-out
            photos).
        seeds: paired seeds per configuration.
        lr: peak learning rate (warm-up + cosine, ``train_net``); ema_decay: evaluate the EMA
            of the weights with this decay.
        curve_points: held-out PSNR evaluations during training.
    """

    steps: int
    crop_size: int
    render_size: int
    train_crops: int
    test_crops: int
    seeds: int
    lr: float = 1e-3
    ema_decay: float = 0.999
    curve_points: int = 4

    @property
    def test_scenes(self) -> int:
        """Distinct held-out crops (3 photos x crops), each rendered at the 5 levels."""
        return 3 * self.test_crops

    @property
    def test_images(self) -> int:
        """Held-out test images (3 photos x crops x 5 levels)."""
        return self.test_scenes * 5


#: The GPU mode (>= 24 paired seeds, >= 200 held-out crops: 201 crops, 1005 images).
FULL = Settings(steps=1200, crop_size=96, render_size=128, train_crops=12, test_crops=67, seeds=24)
#: The CPU quick mode: as many seeds as fit in about an hour on 2 busy cores; 42 held-out crops
#: (210 images), where evaluation would otherwise cost as much as training.
QUICK = Settings(steps=150, crop_size=48, render_size=96, train_crops=3, test_crops=14, seeds=6)


@dataclass(frozen=True)
class Arm:
    """A loss configuration: the relation term's BCM (zoo name or path) and loss variant.

    ``ours`` marks arms that are our extensions, not the paper's method.
    """

    label: str
    bcm: str
    variant: str = "paper"
    ours: bool = False
    title: str = ""


#: Every ERL arm the sections may use, by label.
ARMS: dict[str, Arm] = {
    "phase": Arm("phase", "bcm-phase-photos", title="paper BCM (phase pretext, eq. 4)"),
    "phase-centred": Arm(
        "phase-centred",
        "bcm-phase-photos",
        variant="centred",
        ours=True,
        title="paper BCM, centred relation feature (our extension)",
    ),
    "l1": Arm("l1", "bcm-l1-photos", title="L1 pretext BCM"),
    "none": Arm("none", "bcm-none-photos", title="BCM w/o pretext (random t_e)"),
}

#: ERL arms of the ``main`` section (each net, alpha 0.1, batch 4).
MAIN_ARMS = ("phase", "phase-centred")
#: Table-2 ablation arms (each net).
ABLATION_ARMS = ("none", "l1", "phase")


@dataclass(frozen=True)
class Job:
    """One training run; ``arm`` is a key of :data:`ARMS` or ``None`` (the L1 baseline)."""

    net: str
    arm: str | None
    batch_size: int
    alpha: float
    seed: int

    @property
    def key(self) -> str:
        return (
            f"{self.net}|{self.arm or 'baseline'}|b{self.batch_size}|a{self.alpha:g}|s{self.seed}"
        )


def plan_jobs(
    sections: list[str],
    seeds: int,
    main_arms: tuple[str, ...] = MAIN_ARMS,
    first_seed: int = 0,
    nets: tuple[str, ...] = NETS,
) -> list[Job]:
    """Every distinct run the sections need (runs shared by sections appear once), for seeds
    ``first_seed .. first_seed + seeds - 1``, seed by seed (a run stopped early leaves complete
    pairs), the slowest (FECNet, batch 8) first within a seed. Runs of disjoint seed ranges with
    the same settings can be merged afterwards (``quality.py --render-only A.json B.json``).
    Only the runs of ``nets`` are planned (the batch and alpha sections are ECLNet's)."""
    jobs: dict[str, Job] = {}

    def add(net: str, arm: str | None, batch: int = 4, alpha: float = 0.1) -> None:
        if net not in nets:
            return
        for seed in range(first_seed, first_seed + seeds):
            job = Job(net, arm, batch, alpha if arm else 0.0, seed)
            jobs.setdefault(job.key, job)

    if "main" in sections:
        for net in NETS:
            add(net, None)
            for arm in main_arms:
                add(net, arm)
    if "ablation" in sections:
        for net in NETS:
            add(net, None)
            for arm in ABLATION_ARMS:
                add(net, arm)
    if "batch" in sections:
        for batch in (2, 4, 8):
            add("ECLNet", None, batch)
            add("ECLNet", "phase", batch)
    if "alpha" in sections:
        add("ECLNet", None)
        for alpha in (0.01, 0.1, 1.0):
            add("ECLNet", "phase", alpha=alpha)
    return sorted(
        jobs.values(), key=lambda j: (j.seed, j.net != "FECNet", j.batch_size != 8, j.key)
    )


def arms_of(jobs: list[Job]) -> list[str]:
    """The ERL arms the jobs use, in :data:`ARMS` order."""
    used = {job.arm for job in jobs if job.arm}
    return [label for label in ARMS if label in used]
