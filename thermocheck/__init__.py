"""thermocheck: the ideal-gas thermodynamics of SGD on scale-invariant networks, as checks.

Sadrtdinov et al., "Can Training Dynamics of Scale-Invariant Neural Networks Be Explained by the
Thermodynamics of an Ideal Gas?" (arXiv:2511.07308, 2025).
"""

__version__ = "0.1.0"
