"""Shell completion, in the real shells: the generated script is loaded into bash, fish and zsh
and their own completion machinery is asked what a Tab would offer.

bash: the script is sourced in ``bash --norc --noprofile``, and the function it registered with
``complete -F`` is called with COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT, as readline would.
fish: ``complete -C "LINE"`` (fish's own completion of a command line). zsh: the script is
loaded by ``compinit`` in an interactive zsh on a pseudo-terminal, and a Tab is typed; a
``compadd`` wrapper writes down what zsh's completion system offers (see ``zsh_complete``).
Each is run against a small parser with every kind of argument and against wanbatch's own.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from wanbatch import cli
from wanbatch.completion import SHELLS, completion_script

from shells import shell_path


def small_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wanbatch")
    parser.add_argument("--version", action="version", version="1")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    go = sub.add_parser("go", help="start the engines")
    go.add_argument("manifest")
    go.add_argument("--mode", choices=["fast", "slow"], help="how fast")
    go.add_argument("--config", metavar="FILE", help="settings file")
    go.add_argument("--out", metavar="DIR", help="where to write")
    go.add_argument("--name", help="a free value")
    go.add_argument("-v", "--verbose", action="count", default=0, help="more")
    go.add_argument("--secret", help=argparse.SUPPRESS)
    sub.add_parser("gone", help="it's [gone]: quotes and brackets survive")
    stop = sub.add_parser("stop", help="stop; then wait")
    stop.add_argument("--now", action="store_true", help="at once")
    completion = sub.add_parser("completion", help="print a completion script")
    completion.add_argument("shell", choices=SHELLS)
    return parser


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with a manifest, a CSV, and a sub-folder."""
    (tmp_path / "jobs.yaml").write_text("jobs: []\n")
    (tmp_path / "notes.csv").write_text("prompt\n")
    (tmp_path / "renders").mkdir()
    return tmp_path


# -- bash ----------------------------------------------------------------------------------


def bash_complete(parser: argparse.ArgumentParser, line: str, cwd: Path) -> list[str]:
    """What bash's completion function for ``wanbatch`` puts in COMPREPLY for ``line`` (the
    cursor at its end), with the words split as readline splits them (``=`` is a word)."""
    script = cwd / "wanbatch.bash"
    script.write_text(completion_script(parser, "bash"))
    words = line.replace("=", " = ").split()
    if line.endswith(" ") or line.endswith("="):
        words.append("")
    if words[-2:-1] == ["="] and words[-1] == "" and line.endswith("="):
        words = [*words[:-2], "="]  # `--out=` with the cursor after '=': the word is '='
    array = " ".join(shlex.quote(word) for word in words)
    driver = f"""
source {shlex.quote(str(script))} || exit 9
function=$(complete -p wanbatch | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')
COMP_WORDS=({array})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE={shlex.quote(line)}
COMP_POINT=${{#COMP_LINE}}
"$function" wanbatch "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(
        [shell_path("bash"), "--norc", "--noprofile", "-c", driver],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return sorted(reply for reply in done.stdout.splitlines() if reply)


def test_bash_completes_the_subcommands(workdir: Path) -> None:
    assert bash_complete(small_parser(), "wanbatch ", workdir) == [
        "completion",
        "go",
        "gone",
        "stop",
    ]
    assert bash_complete(small_parser(), "wanbatch go", workdir) == ["go", "gone"]
    assert bash_complete(cli.build_parser(), "wanbatch r", workdir) == ["report", "retry", "run"]


def test_bash_completes_each_subcommands_flags(workdir: Path) -> None:
    flags = bash_complete(small_parser(), "wanbatch go -", workdir)
    assert flags == sorted(
        ["-h", "--help", "--mode", "--config", "--out", "--name", "-v", "--verbose"]
    )  # the suppressed --secret is not offered
    assert bash_complete(small_parser(), "wanbatch -", workdir) == ["--help", "--version", "-h"]
    run_flags = bash_complete(cli.build_parser(), "wanbatch run --", workdir)
    assert {"--simulate", "--max-credits", "--output", "--salvage-journal"} <= set(run_flags)
    assert "--include-lost" not in run_flags  # retry's, not run's
    assert bash_complete(cli.build_parser(), "wanbatch retry --incl", workdir) == ["--include-lost"]


def test_bash_completes_choices(workdir: Path) -> None:
    assert bash_complete(small_parser(), "wanbatch go --mode ", workdir) == ["fast", "slow"]
    assert bash_complete(small_parser(), "wanbatch go --mode s", workdir) == ["slow"]
    assert bash_complete(small_parser(), "wanbatch go --mode=f", workdir) == ["fast"]
    assert bash_complete(small_parser(), "wanbatch go --mode=", workdir) == ["fast", "slow"]
    shells = ["bash", "fish", "zsh"]
    assert bash_complete(small_parser(), "wanbatch completion ", workdir) == shells


def test_bash_completes_file_names_for_the_manifest_and_file_flags(workdir: Path) -> None:
    everything = ["jobs.yaml", "notes.csv", "renders", "wanbatch.bash"]
    assert bash_complete(small_parser(), "wanbatch go ", workdir) == everything
    assert bash_complete(small_parser(), "wanbatch go j", workdir) == ["jobs.yaml"]
    assert bash_complete(small_parser(), "wanbatch go --config n", workdir) == ["notes.csv"]
    assert bash_complete(cli.build_parser(), "wanbatch run j", workdir) == ["jobs.yaml"]
    assert bash_complete(cli.build_parser(), "wanbatch validate ", workdir) == everything
    # after flags and their values, the manifest is still the first positional
    line = "wanbatch run -v --model wan-2-2 --concurrency=4 j"
    assert bash_complete(cli.build_parser(), line, workdir) == ["jobs.yaml"]


def test_bash_completes_folders_for_a_dir_flag(workdir: Path) -> None:
    assert bash_complete(small_parser(), "wanbatch go --out ", workdir) == ["renders"]
    assert bash_complete(cli.build_parser(), "wanbatch run --output ", workdir) == ["renders"]


def test_bash_completes_nothing_after_a_free_value_or_past_the_positionals(workdir: Path) -> None:
    assert bash_complete(small_parser(), "wanbatch go --name ", workdir) == []
    assert bash_complete(cli.build_parser(), "wanbatch run --model ", workdir) == []
    assert bash_complete(cli.build_parser(), "wanbatch run jobs.yaml ", workdir) == []
    assert bash_complete(small_parser(), "wanbatch stop ", workdir) == []


# -- fish ----------------------------------------------------------------------------------


def fish_complete(parser: argparse.ArgumentParser, line: str, cwd: Path) -> list[str]:
    """fish's own completions for ``line``: one ``candidate<TAB>description`` each."""
    script = cwd / "wanbatch.fish"
    script.write_text(completion_script(parser, "fish"))
    command = f"source {shlex.quote(str(script))}; or exit 9; complete -C {shlex.quote(line)}"
    done = subprocess.run(
        [shell_path("fish"), "--no-config", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "HOME": str(cwd)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return sorted(done.stdout.splitlines())


def test_fish_completes_subcommands_with_their_help(workdir: Path) -> None:
    assert fish_complete(small_parser(), "wanbatch go", workdir) == [
        "go\tstart the engines",
        "gone\tit's [gone]: quotes and brackets survive",
    ]
    replies = fish_complete(cli.build_parser(), "wanbatch ru", workdir)
    assert replies == ["run\trender every job"]  # the help up to its first "; "


def fish_names(parser: argparse.ArgumentParser, line: str, cwd: Path) -> list[str]:
    """The candidates fish offers for ``line``, without their descriptions."""
    return [reply.split("\t")[0] for reply in fish_complete(parser, line, cwd)]


def test_fish_completes_flags_choices_and_files(workdir: Path) -> None:
    small, real = small_parser(), cli.build_parser()
    flags = fish_complete(small, "wanbatch go --", workdir)
    assert [reply.split("\t")[0] for reply in flags] == sorted(
        ["--help", "--mode", "--config", "--out", "--name", "--verbose"]
    )  # the suppressed --secret is not offered
    assert "--mode\thow fast" in flags
    assert fish_names(small, "wanbatch go --mode ", workdir) == ["fast", "slow"]
    assert fish_names(small, "wanbatch go --mode=s", workdir) == ["--mode=slow"]
    assert fish_names(small, "wanbatch completion ", workdir) == ["bash", "fish", "zsh"]
    assert fish_names(small, "wanbatch go j", workdir) == ["jobs.yaml"]
    assert fish_names(small, "wanbatch go --config n", workdir) == ["notes.csv"]
    assert fish_names(small, "wanbatch go --out ", workdir) == ["renders/"]
    assert fish_names(small, "wanbatch go --name ", workdir) == []
    assert fish_names(small, "wanbatch go jobs.yaml ", workdir) == []
    assert fish_names(real, "wanbatch run --max-c", workdir) == ["--max-credits"]
    assert fish_names(real, "wanbatch retry --incl", workdir) == ["--include-lost"]
    assert fish_names(real, "wanbatch run --incl", workdir) == []
    assert fish_names(real, "wanbatch run --model x -v j", workdir) == ["jobs.yaml"]
    assert fish_names(real, "wanbatch run --output ", workdir) == ["renders/"]
    assert fish_names(real, "wanbatch run --model ", workdir) == []


# -- zsh -----------------------------------------------------------------------------------

# The .zshrc of the zsh that is asked: the script is installed as an autoloaded `_wanbatch` in
# fpath (as a user installs it) and found by compinit through its #compdef line. `compadd` is
# wrapped: every call that offers candidates first asks the real compadd which of them match
# what is typed (-A: matches only, no display) and writes those, with their descriptions, to
# $ZSH_RECORD; after each completion, comppostfuncs writes the line "--done--".
ZSHRC = r"""
PS1='> '
fpath=("$ZDOTDIR/functions" $fpath)
autoload -Uz compinit && compinit -u -d "$ZDOTDIR/.zcompdump"
[[ -n $ZSH_SOURCE ]] && source "$ZSH_SOURCE"  # else compinit autoloads it from fpath
zstyle ':completion:*' list-grouped false
compadd() {
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
    local -a __hits __descriptions
    local __name=${@[(i)-d]}
    if (( __name < $# )); then
        __name=${@[__name+1]}
        if [[ $__name == \(* ]]; then eval "__descriptions=$__name"
        else __descriptions=("${(@P)__name}"); fi
    fi
    builtin compadd -A __hits -D __descriptions "$@"
    local __i
    for __i in {1..$#__hits}; do
        print -r -- "$__hits[__i]"$'\t'"${__descriptions[__i]}" >> "$ZSH_RECORD"
    done
    builtin compadd "$@"
}
_record_done() { print -r -- --done-- >> "$ZSH_RECORD" }
comppostfuncs=(_record_done)
print -r -- --ready-- >> "$ZSH_RECORD"
"""


def zsh_complete(
    parser: argparse.ArgumentParser, line: str, cwd: Path, *, sourced: bool = False
) -> list[str]:
    """What zsh's completion system offers when Tab is pressed after ``line`` in an interactive
    zsh (on a pseudo-terminal): one ``candidate<TAB>description`` each, the description empty
    where zsh shows none. The script is autoloaded from fpath, or ``sourced`` after compinit
    (``source <(wanbatch completion zsh)`` in .zshrc)."""
    home = cwd.parent / f"{cwd.name}-zsh-{'sourced' if sourced else 'fpath'}"
    (home / "functions").mkdir(parents=True, exist_ok=True)
    (home / ".zshrc").write_text(ZSHRC)
    script = home / ("wanbatch.zsh" if sourced else "functions/_wanbatch")
    script.write_text(completion_script(parser, "zsh"))
    record = home / "record"
    record.write_text("")
    env = {**os.environ, "HOME": str(home), "ZDOTDIR": str(home), "ZSH_RECORD": str(record)}
    env["ZSH_SOURCE"] = str(script) if sourced else ""
    env["TERM"] = "dumb"
    main, secondary = pty.openpty()
    shell = subprocess.Popen(
        [shell_path("zsh"), "-i"],
        cwd=cwd,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
    )
    os.close(secondary)
    screen = b""

    def wait_for(marker: str) -> None:
        nonlocal screen
        deadline = time.monotonic() + 30
        while marker not in record.read_text():
            assert time.monotonic() < deadline, f"zsh did not answer: {screen[-2000:]!r}"
            if select.select([main], [], [], 0.05)[0]:
                try:
                    screen += os.read(main, 65536)
                except OSError:
                    pass

    try:
        wait_for("--ready--")
        os.write(main, line.encode() + b"\t")
        wait_for("--done--")
    finally:
        shell.kill()
        shell.wait(timeout=10)
        os.close(main)
    offered = record.read_text().split("--ready--\n", 1)[1].split("--done--")[0]
    replies = set()
    for reply in offered.splitlines():
        candidate, _, shown = reply.partition("\t")
        if candidate:  # '' is a message (what a free value is), not a candidate
            replies.add(f"{candidate}\t{shown.partition(' -- ')[2]}")
    return sorted(replies)


def zsh_names(
    parser: argparse.ArgumentParser, line: str, cwd: Path, *, sourced: bool = False
) -> list[str]:
    replies = zsh_complete(parser, line, cwd, sourced=sourced)
    return sorted({reply.split("\t")[0] for reply in replies})


def test_zsh_script_is_valid_zsh() -> None:
    for parser in (small_parser(), cli.build_parser()):
        done = subprocess.run(
            [shell_path("zsh"), "-n"],
            input=completion_script(parser, "zsh"),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr


def test_zsh_completes_subcommands_with_their_help(workdir: Path) -> None:
    assert zsh_complete(small_parser(), "wanbatch go", workdir) == [
        "go\tstart the engines",
        "gone\tit's [gone]: quotes and brackets survive",
    ]
    assert zsh_names(cli.build_parser(), "wanbatch r", workdir) == ["report", "retry", "run"]
    sourced = zsh_names(cli.build_parser(), "wanbatch r", workdir, sourced=True)
    assert sourced == ["report", "retry", "run"]


def test_zsh_completes_flags_choices_and_files(workdir: Path) -> None:
    small, real = small_parser(), cli.build_parser()
    flags = zsh_complete(small, "wanbatch go --", workdir)
    assert [reply.split("\t")[0] for reply in flags] == sorted(
        ["--help", "--mode", "--config", "--out", "--name", "--verbose"]
    )  # the suppressed --secret is not offered
    assert "--mode\thow fast" in flags
    assert zsh_names(small, "wanbatch go --mode ", workdir) == ["fast", "slow"]
    assert zsh_names(small, "wanbatch go --mode=s", workdir) == ["slow"]
    assert zsh_names(small, "wanbatch completion ", workdir) == ["bash", "fish", "zsh"]
    assert zsh_names(small, "wanbatch go j", workdir) == ["jobs.yaml"]
    assert zsh_names(small, "wanbatch go --config n", workdir) == ["notes.csv"]
    assert zsh_names(small, "wanbatch go --out ", workdir) == ["renders"]
    assert zsh_names(small, "wanbatch go --name ", workdir) == []
    assert zsh_names(real, "wanbatch run --max-c", workdir) == ["--max-credits"]
    assert zsh_names(real, "wanbatch run --model x -v j", workdir) == ["jobs.yaml"]
    assert zsh_names(real, "wanbatch run --output ", workdir) == ["renders"]


def flat_parser() -> argparse.ArgumentParser:
    """A parser without subcommands: its positionals are completed from the first word on."""
    parser = argparse.ArgumentParser(prog="wanbatch")
    parser.add_argument("inputs", metavar="FILE", nargs="+")
    parser.add_argument("--level", type=int, choices=[1, 2])
    return parser


def test_a_parser_without_subcommands(workdir: Path) -> None:
    flat = flat_parser()
    assert bash_complete(flat, "wanbatch j", workdir) == ["jobs.yaml"]
    assert bash_complete(flat, "wanbatch jobs.yaml n", workdir) == ["notes.csv"]  # nargs +
    assert bash_complete(flat, "wanbatch --level ", workdir) == ["1", "2"]
    assert fish_names(flat, "wanbatch jobs.yaml n", workdir) == ["notes.csv"]
    assert fish_names(flat, "wanbatch --level ", workdir) == ["1", "2"]
    assert zsh_names(flat, "wanbatch jobs.yaml n", workdir) == ["notes.csv"]
    assert zsh_names(flat, "wanbatch --level ", workdir) == ["1", "2"]


def test_every_shell_gets_a_script_and_an_unknown_one_is_refused() -> None:
    for shell in SHELLS:
        assert "wanbatch" in completion_script(cli.build_parser(), shell)
    with pytest.raises(ValueError, match="powershell"):
        completion_script(cli.build_parser(), "powershell")
