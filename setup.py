"""Maps three top-level folders into the single ``erl_losses`` import namespace.

``erl_losses/`` is the core, ``zoo/`` becomes ``erl_losses.zoo`` and ``adapters/`` becomes
``erl_losses.adapters`` (never a top-level ``adapters`` module: a PyPI package of that name exists).
The package list is computed so that new sub-packages need no edit here.
"""

from setuptools import find_packages, setup

ROOTS = {"erl_losses": "erl_losses", "erl_losses.zoo": "zoo", "erl_losses.adapters": "adapters"}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=ROOTS)
