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
