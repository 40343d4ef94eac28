"""mfdeploy: Mobile-Former from PyTorch checkpoint to verified mobile artifacts."""

__version__ = "0.2.1"
