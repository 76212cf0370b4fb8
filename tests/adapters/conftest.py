"""Import the adapter before any test module imports basicsr.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor`` (gone from current
torchvision); the adapter installs the alias on import. Test modules import basicsr at the top,
so the adapter must come first, whichever test file runs alone.
"""

import erl_losses.adapters.basicsr  # noqa: F401
