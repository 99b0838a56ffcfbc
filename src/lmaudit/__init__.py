"""lmaudit: evaluate, red-team and explain language models."""
__version__ = "0.1.0"
