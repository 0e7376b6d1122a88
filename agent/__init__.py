"""model-safety: keeps every version of a model checkpoint safe, locally and on remotes."""

__version__ = "0.1.0"
