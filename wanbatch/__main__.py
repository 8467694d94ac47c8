"""``python -m wanbatch``: the same as the ``wanbatch`` console script."""

from wanbatch.cli import entrypoint

entrypoint()
