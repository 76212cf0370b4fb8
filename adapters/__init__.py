"""Framework adapters for erl-losses, imported as ``erl_losses.adapters``.

* :mod:`erl_losses.adapters.basicsr`: registers ERL's losses, the reference nets, the exposure
  datasets and the ERL/pretext models into BasicSR, with option files and console scripts
  (``erl-basicsr-train``, ``erl-basicsr-test``). Needs the ``basicsr`` extra.
* :mod:`erl_losses.adapters.vendored`: the same losses with BasicSR's signature, importing no
  basicsr, for research repos that vendor a registry-free BasicSR copy (core install only).

The torchvision alias basicsr 1.4.2 needs lives in the core (``erl_losses._torchvision_alias``),
which ``erl_losses.evaluation.metrics`` and the BasicSR adapter both apply.

Importing this package imports no framework.
"""
