"""``wanbatch completion SHELL``: print a completion script for bash, zsh or fish.

The script is written from the parser itself (``wanbatch.completion``), so every command and
flag is completed as it is today; regenerate it after upgrading wanbatch.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from wanbatch.completion import SHELLS, completion_script
from wanbatch.settings import Flags

NAME = "completion"
HELP = "print a shell completion script (bash, zsh or fish)"
DESCRIPTION = (
    "Print a completion script for your shell. bash: wanbatch completion bash >"
    " ~/.local/share/bash-completion/completions/wanbatch; zsh: wanbatch completion zsh >"
    " ~/.zfunc/_wanbatch (with fpath=(~/.zfunc $fpath) before compinit); fish: wanbatch"
    " completion fish > ~/.config/fish/completions/wanbatch.fish"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", metavar="SHELL", choices=SHELLS, help=", ".join(SHELLS))


def execute(flags: Flags, out: TextIO) -> int:
    from wanbatch.commands import build_parser  # the parser of every command, this one's too

    out.write(completion_script(build_parser(), flags.shell or "bash", prog="wanbatch"))
    return 0
