"""Framework adapters for erl-losses, imported as ``erl_losses.adapters``.

* :mod:`erl_losses.adapters.basicsr`: registers ERL's losses, the reference nets, the exposure
  datasets and the ERL/pretext models into BasicSR, with option files and console scripts
  (``erl-basicsr-train``, ``erl-basicsr-test``). Needs the ``basicsr`` extra.

Importing this package imports no framework.
"""
