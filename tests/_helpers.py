"""Constants shared by the tests (importable as ``tests._helpers``; pytest's pythonpath is ".")."""

# A miniature BCM with every part of the real one (stride-2 encoder, grid pooling, 2 attention
# layers, decoder) but a fraction of its cost; hypothesis tests build many of these batches.
TINY_BCM = dict(channels=8, feat_channels=4, grid=4, d_model=16, num_heads=2, num_layers=2)

# A full config (every constructor argument) of the smallest BCM that the zoo and pretext tests
# save, load and train: weights of a few kB, 32 px working resolution.
TINY_SAVED_BCM = {
    "in_channels": 3,
    "channels": 4,
    "feat_channels": 2,
    "grid": 4,
    "d_model": 8,
    "num_heads": 2,
    "num_layers": 1,
    "ff_mult": 1,
    "work_size": 32,
}


def erl_model_opt(models_dir: object, train: dict, **top: object) -> dict:
    """A minimal in-memory option dict of a CPU ``ERLModel`` (tiny ECLNet, Adam, MultiStepLR):
    ``train`` adds to the ``train`` section, ``top`` overrides top-level keys."""
    return {
        "name": "unit",
        "model_type": "ERLModel",
        "num_gpu": 0,
        "is_train": True,
        "dist": False,
        "rank": 0,
        "world_size": 1,
        "network_g": {"type": "ECLNet", "nc": 4, "num_blocks": 1},
        "path": {"models": str(models_dir)},
        "train": {
            "optim_g": {"type": "Adam", "lr": 1e-3},
            "scheduler": {"type": "MultiStepLR", "milestones": [10], "gamma": 0.5},
            **train,
        },
        **top,
    }


def quality_job_failing_on_seed_1(job: object) -> dict:
    """A stand-in for ``benchmarks/quality._run_job`` (importable by spawned workers): seed 1
    raises, the others return a minimal run."""
    if job.seed == 1:  # type: ignore[attr-defined]
        raise RuntimeError("run failed on purpose")
    return {"key": job.key, "groups": {"Average": {"psnr": 20.0}}, "seconds": 0.0}  # type: ignore[attr-defined]
