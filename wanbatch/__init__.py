"""wanbatch: render large batches of Wan videos, resumably, paying for each once."""

__version__ = "0.1.0"
