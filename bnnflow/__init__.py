"""bnnflow: binarized neural networks from PyTorch training to FPGA gateware, proven bit-exact.

Subpackages: :mod:`bnnflow.model` (training, the ``.bnn`` artifact, the golden model),
:mod:`bnnflow.hw` (Amaranth generators), :mod:`bnnflow.sim` (simulation and comparison) and
:mod:`bnnflow.boards` (synthesis and board builds). Importing this package is cheap: it loads
neither torch nor Amaranth. It pins the numerics of training (:mod:`bnnflow.numerics`) when
torch is not imported yet, so that a seed gives the same model on every x86-64 machine.
"""

from .numerics import pin as _pin_numerics

__version__ = "0.1.0"

_pin_numerics()
