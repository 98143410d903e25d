"""zund: a Zun-compatible container service with no central control plane."""

__version__ = "0.1.0"
