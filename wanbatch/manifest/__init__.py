"""The manifest: a YAML or CSV file of jobs, read into a validated ``Manifest``. Pure but for
reading its files.

- ``reading``: bytes read and decoded (the package's only I/O), paths resolved;
- ``yamlread`` and ``csvread``: text -> raw jobs, with the line of every key and row;
- ``schema``: the table of every section's keys, kinds, defaults and job fields;
- ``problems``: problems with their ``file:line:``, and the checks of single values;
- ``sections`` and ``gateway``: name, api, pricing, limits, matrix, and the flags' ``Overrides``;
- ``jobs``: one raw job checked and expanded over the matrix, with its id and fingerprint;
- ``paths``: output path templates;
- ``load``: ``load_manifest``, all of the above in one pass;
- ``retry``: the manifest of a run's failed jobs (``retry.yaml``).
"""

from __future__ import annotations

from wanbatch.manifest.csvread import lines as _lines
from wanbatch.manifest.load import load_manifest
from wanbatch.manifest.retry import RETRY_NAME, retry_manifest
from wanbatch.manifest.schema import SCHEMA, Key
from wanbatch.manifest.sections import Overrides

__all__ = ["RETRY_NAME", "SCHEMA", "Key", "Overrides", "load_manifest", "retry_manifest"]

_ = _lines  # what the pinned tests read CSV lines with, as ``manifest._lines``
