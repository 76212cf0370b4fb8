"""Constants shared by the tests (importable as ``tests._helpers``; pytest's pythonpath is ".")."""

# A miniature BCM with every part of the real one (stride-2 encoder, grid pooling, 2 attention
# layers, decoder) but a fraction of its cost; hypothesis tests build many of these batches.
TINY_BCM = dict(channels=8, feat_channels=4, grid=4, d_model=16, num_heads=2, num_layers=2)
