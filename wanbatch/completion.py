"""Shell completion scripts for bash, zsh and fish, written from an argparse parser. Pure: text.

``completion_script(parser, shell)`` walks the parser's actions (its subcommands, and each one's
options and positionals) and writes a static script: nothing of wanbatch runs on a Tab. A new
flag or subcommand is completed as soon as the script is generated again. What follows each
argument is decided from the parser alone (``_value``):

- a flag that takes no value (``store_true``, ``count``, ``help``...): nothing;
- ``choices``: those words;
- a metavar or name saying DIR, DIRECTORY or FOLDER: folder names; FILE, PATH or MANIFEST (or an
  ``argparse.FileType``): file names;
- any other value (``--model``, ``--concurrency N``): nothing, not file names;
- a nested ``add_subparsers``: its subcommand names, as choices.

Options whose help is ``argparse.SUPPRESS`` are never offered (their values are still skipped).
zsh and fish show each subcommand's and option's help (its first clause) beside it. Why not a
library: shtab marks file arguments only through an attribute set on each action by hand, and
its bash script falls back to file names after a flag that takes a free value; argcomplete runs
the program on every Tab.

Over 400 lines: one walk of the parser and three writers of its result, each mostly the script
template of its shell; they are read together when a kind of argument is added.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

SHELLS = ("bash", "zsh", "fish")

DIR_WORDS = frozenset({"DIR", "DIRECTORY", "FOLDER"})
FILE_WORDS = frozenset({"FILE", "PATH", "MANIFEST"})
HELP_WIDTH = 80


@dataclass(frozen=True)
class Value:
    """What follows an option, or fills a positional: none (a bare flag), free, file, dir, or
    choices (``words``)."""

    kind: str
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Option:
    strings: tuple[str, ...]
    metavar: str
    value: Value
    help: str
    hidden: bool
    repeats: bool  # count or append: may be given more than once


@dataclass(frozen=True)
class Positional:
    name: str
    value: Value
    many: bool  # nargs * or +
    optional: bool  # nargs ? or *


@dataclass(frozen=True)
class Command:
    """A parser's arguments: the program's own (``name`` '') or one subcommand's."""

    name: str
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    subcommands: tuple[Command, ...] = ()


def completion_script(parser: argparse.ArgumentParser, shell: str, prog: str = "wanbatch") -> str:
    """The completion script of ``parser`` (run as ``prog``) for ``shell``, one of ``SHELLS``."""
    writers = {"bash": _bash, "zsh": _zsh, "fish": _fish}
    if shell not in writers:
        raise ValueError(f"no completion for {shell!r}: choose one of {', '.join(SHELLS)}")
    return writers[shell](describe(parser), prog)


def describe(parser: argparse.ArgumentParser, name: str = "", help: str = "") -> Command:
    """The parser's options, positionals and subcommands (one level of subcommands; deeper
    ones are completed as choices of their parent's positional)."""
    options: list[Option] = []
    positionals: list[Positional] = []
    subcommands: list[Command] = []
    for action in parser._actions:
        if action.option_strings:
            options.append(
                Option(
                    strings=tuple(action.option_strings),
                    metavar=_name(action).upper(),
                    value=_value(action),
                    help=_help(parser, action),
                    hidden=action.help == argparse.SUPPRESS,
                    repeats=isinstance(action, argparse._CountAction | argparse._AppendAction),
                )
            )
        elif isinstance(action, argparse._SubParsersAction) and not name:
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            primary = {id(sub): key for key, sub in reversed(action.choices.items())}
            for key, sub in action.choices.items():
                text = helps.get(key) or helps.get(primary[id(sub)], "")
                subcommands.append(describe(sub, key, _first_clause(text)))
        else:
            positionals.append(
                Positional(
                    name=_name(action),
                    value=_value(action),
                    many=action.nargs in ("*", "+", argparse.REMAINDER),
                    optional=action.nargs in ("?", "*"),
                )
            )
    return Command(name, help, tuple(options), tuple(positionals), tuple(subcommands))


def _name(action: argparse.Action) -> str:
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    return action.metavar or action.dest


def _value(action: argparse.Action) -> Value:
    if action.nargs == 0:
        return Value("none")
    if action.choices is not None:
        return Value("choices", tuple(str(choice) for choice in action.choices))
    if isinstance(action.type, argparse.FileType):
        return Value("file")
    words = set(re.split(r"[^A-Z]+", _name(action).upper()))
    if words & DIR_WORDS:
        return Value("dir")
    if words & FILE_WORDS:
        return Value("file")
    return Value("free")


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    try:
        text = parser._get_formatter()._expand_help(action)
    except (KeyError, TypeError, ValueError):
        text = action.help
    return _first_clause(text)


def _first_clause(text: str) -> str:
    """The help up to its first '; ' on one line, cut to HELP_WIDTH."""
    text = " ".join(text.split()).split("; ")[0]
    return text if len(text) <= HELP_WIDTH else text[: HELP_WIDTH - 3].rstrip() + "..."


def _function(prog: str) -> str:
    return "_" + re.sub(r"\W", "_", prog)


def _commands(root: Command) -> list[Command]:
    """The root, then each subcommand: the contexts a word can be completed in."""
    return [root, *root.subcommands]


def _positional_values(command: Command) -> list[tuple[str, Value, bool]]:
    """(index pattern, value, many) of each positional; the root's subcommands come first."""
    values: list[tuple[str, Value, bool]] = []
    for index, positional in enumerate(command.positionals):
        values.append((str(index), positional.value, positional.many))
    if command.subcommands:
        names = tuple(sub.name for sub in command.subcommands)
        values.insert(0, ("0", Value("choices", names), False))
    return values


# -- bash ------------------------------------------------------------------------------------


def _sh(text: str) -> str:
    """``text`` in single quotes for bash and zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _bash_kind(value: Value) -> str:
    return "choices:" + " ".join(value.words) if value.kind == "choices" else value.kind


def _bash(root: Command, prog: str) -> str:
    fn = _function(prog)
    options, values, positionals = [], [], []
    for command in _commands(root):
        shown = [s for option in command.options if not option.hidden for s in option.strings]
        options.append(f"        {_sh(command.name)}) {fn}_reply={_sh(' '.join(shown))} ;;")
        for option in command.options:
            if option.value.kind != "none":
                keys = "|".join(_sh(f"{command.name}:{s}") for s in option.strings)
                values.append(f"        {keys}) {fn}_reply={_sh(_bash_kind(option.value))} ;;")
        for index, value, many in _positional_values(command):
            # a positional of nargs * or +: this index and every later one (the case takes
            # the first pattern that matches, and earlier positionals come first)
            pattern = _sh(f"{command.name}:") + ("*" if many else index)
            positionals.append(f"        {pattern}) {fn}_reply={_sh(_bash_kind(value))} ;;")
    has_commands = "1" if root.subcommands else ""
    return f"""\
# bash completion for {prog}: generated from its parser; regenerate after an upgrade.
# Install: {prog} completion bash > ~/.local/share/bash-completion/completions/{prog}

{fn}_options() {{  # the options of command $1 ('' before any command)
    case $1 in
{chr(10).join(options)}
        *) {fn}_reply='' ;;
    esac
}}

{fn}_value() {{  # what follows option $2 of command $1: none, free, file, dir, choices:WORDS
    case "$1:$2" in
{chr(10).join(values)}
        *) {fn}_reply=none ;;
    esac
}}

{fn}_positional() {{  # what positional $2 (from 0) of command $1 takes
    case "$1:$2" in
{chr(10).join(positionals)}
        *) {fn}_reply=none ;;
    esac
}}

{fn}_fill() {{  # COMPREPLY from a kind ($1) and the word being completed ($2)
    local line
    case $1 in
        file|dir)
            compopt -o filenames 2>/dev/null || :
            local flag=-f
            [[ $1 == dir ]] && flag=-d
            while IFS= read -r line; do COMPREPLY+=("$line"); done < <(compgen "$flag" -- "$2")
            ;;
        choices:*)
            while IFS= read -r line; do COMPREPLY+=("$line"); done \\
                < <(compgen -W "${{1#choices:}}" -- "$2")
            ;;
    esac
}}

{fn}_complete() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} option='' command='' index=0 expect='' rest='' word i
    local has_commands={has_commands} {fn}_reply last=$COMP_CWORD
    COMPREPLY=()
    # `--flag=value`: readline makes '=' a word of its own
    if [[ $cur == '=' ]]; then
        cur='' option=${{COMP_WORDS[COMP_CWORD-1]}} last=$((COMP_CWORD - 1))
    elif (( COMP_CWORD > 2 )) && [[ ${{COMP_WORDS[COMP_CWORD-1]}} == '=' ]]; then
        option=${{COMP_WORDS[COMP_CWORD-2]}} last=$((COMP_CWORD - 2))
    fi
    for (( i=1; i < last; i++ )); do
        word=${{COMP_WORDS[i]}}
        if [[ -n $expect ]]; then expect=''; continue; fi
        if [[ -z $rest && $word == -* ]]; then
            if [[ $word == -- ]]; then rest=1; continue; fi
            if [[ ${{COMP_WORDS[i+1]}} == '=' ]]; then (( i += 2 )); continue; fi
            {fn}_value "$command" "$word"
            [[ ${fn}_reply != none ]] && expect=1
            continue
        fi
        if [[ -n $has_commands && -z $command ]]; then command=$word; continue; fi
        (( index++ ))
    done
    [[ -n $expect ]] && option=${{COMP_WORDS[last-1]}}
    if [[ -n $option ]]; then
        {fn}_value "$command" "$option"
    elif [[ -z $rest && $cur == -* ]]; then
        {fn}_options "$command"
        {fn}_reply="choices:${fn}_reply"
    else
        {fn}_positional "$command" "$index"
    fi
    {fn}_fill "${fn}_reply" "$cur"
    return 0
}}

complete -F {fn}_complete {prog}
"""


# -- zsh -------------------------------------------------------------------------------------


def _zsh_text(text: str) -> str:
    """Help or a name inside an ``_arguments`` spec: brackets and colons escaped."""
    return re.sub(r"([\\\[\]:])", r"\\\1", text)


def _zsh_action(value: Value, name: str) -> str:
    label = _zsh_text(name) or " "
    if value.kind == "choices":
        words = " ".join(re.sub(r"([\\ ()])", r"\\\1", word) for word in value.words)
        return f"{label}:({words})"
    if value.kind == "file":
        return f"{label}:_files"
    if value.kind == "dir":
        return f"{label}:_files -/"
    return f"{label}: "


def _zsh_specs(command: Command) -> list[str]:
    specs = []
    for option in command.options:
        if option.hidden:
            continue
        exclude = "*" if option.repeats else f"({' '.join(option.strings)})"
        for string in option.strings:
            spec = f"{exclude}{string}"
            if option.value.kind != "none":
                spec += "=" if string.startswith("--") else "+"
                spec += f"[{_zsh_text(option.help)}]:{_zsh_action(option.value, option.metavar)}"
            else:
                spec += f"[{_zsh_text(option.help)}]"
            specs.append(spec)
    for positional in command.positionals:
        prefix = "*" if positional.many else ""
        colon = "::" if positional.optional and not positional.many else ":"
        specs.append(f"{prefix}{colon}{_zsh_action(positional.value, positional.name)}")
    return specs


def _zsh(root: Command, prog: str) -> str:
    fn = _function(prog)
    lines = [f"#compdef {prog}", f"# zsh completion for {prog}: generated from its parser.", ""]
    lines.append(f"{fn}_commands() {{")
    lines.append("    local -a commands=(")
    for sub in root.subcommands:
        lines.append(f"        {_sh(sub.name.replace(':', chr(92) + ':') + ':' + sub.help)}")
    lines += ["    )", f"    _describe -t commands {_sh(prog + ' command')} commands", "}", ""]
    lines.append(f"{fn}() {{")
    lines.append("    local curcontext=$curcontext state line ret=1")
    lines.append("    typeset -A opt_args")
    root_specs = [_sh(spec) for spec in _zsh_specs(root)]
    if root.subcommands:
        root_specs += [_sh(f": :{fn}_commands"), _sh("*:: :->args")]
    lines.append("    _arguments -C -s \\")
    lines += [f"        {spec} \\" for spec in root_specs]
    lines.append("        && ret=0")
    if root.subcommands:
        lines += ["    case $state in", "    args)", "        case $words[1] in"]
        for sub in root.subcommands:
            specs = [_sh(spec) for spec in _zsh_specs(sub)] or [_sh("*:: :")]
            lines.append(f"        {_sh(sub.name)})")
            lines.append("            _arguments -s \\")
            lines += [f"                {spec} \\" for spec in specs]
            lines.append("                && ret=0 ;;")
        lines += ["        esac ;;", "    esac"]
    lines += ["    return ret", "}", ""]
    lines.append(f'if [[ $funcstack[1] == {fn} ]]; then {fn} "$@"; else compdef {fn} {prog}; fi')
    return "\n".join(lines) + "\n"


# -- fish ------------------------------------------------------------------------------------


def _fish_text(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_value(value: Value) -> str:
    if value.kind == "choices":
        return "-x -a " + _fish_text(" ".join(value.words))
    if value.kind == "file":
        return "-r -F"
    if value.kind == "dir":
        return "-x -a '(__fish_complete_directories (commandline -ct) \"\")'"
    return "-x"


def _fish_count(has_commands: bool) -> str:
    """The state function's step for a positional word: the first names the subcommand."""
    if not has_commands:
        return "        set index (math $index + 1)"
    return """\
        if test -z "$command"
            set command $word
        else
            set index (math $index + 1)
        end"""


def _fish(root: Command, prog: str) -> str:
    fn = "_" + _function(prog)
    cases = []
    for command in _commands(root):
        for option in command.options:
            if option.value.kind != "none":
                keys = " ".join(_fish_text(f"{command.name}:{s}") for s in option.strings)
                cases += [f"        case {keys}", "            return 0"]
    state = f"""\
# fish completion for {prog}: generated from its parser; regenerate after an upgrade.
# Install: {prog} completion fish > ~/.config/fish/completions/{prog}.fish

function {fn}_takes_value --argument-names command option
    switch "$command:$option"
{chr(10).join(cases)}
    end
    return 1
end

# COMMAND:INDEX of the positional being typed, or COMMAND:value after an option awaiting one
function {fn}_state
    set -l words (commandline -opc)
    set -e words[1]
    set -l command ''
    set -l index 0
    set -l expect 0
    set -l rest 0
    for word in $words
        if test $expect = 1
            set expect 0
            continue
        end
        if test $rest = 0; and string match -q -- '-*' $word
            if test $word = --
                set rest 1
            else if {fn}_takes_value "$command" $word
                set expect 1
            end
            continue
        end
{_fish_count(bool(root.subcommands))}
    end
    if test $expect = 1
        echo "$command:value"
    else
        echo "$command:$index"
    end
end

function {fn}_at --argument-names command index
    test ({fn}_state) = "$command:$index"
end

function {fn}_in --argument-names command
    string match -q -- "$command:*" ({fn}_state)
end

complete -c {prog} -f
"""
    lines = []
    for command in _commands(root):
        within = _fish_text(f"{fn}_in {_fish_text(command.name)}")
        for option in command.options:
            if option.hidden:
                continue
            flags = []
            for string in option.strings:
                kind = "-l" if string.startswith("--") else "-s" if len(string) == 2 else "-o"
                flags.append(f"{kind} {string.lstrip('-')}")
            value = "" if option.value.kind == "none" else " " + _fish_value(option.value)
            describe = f" -d {_fish_text(option.help)}" if option.help else ""
            lines.append(f"complete -c {prog} -n {within} {' '.join(flags)}{value}{describe}")
        if command is root:
            for sub in root.subcommands:
                at = _fish_text(f"{fn}_at '' 0")
                lines.append(
                    f"complete -c {prog} -n {at} -a {_fish_text(sub.name)} -d {_fish_text(sub.help)}"
                )
        for index, positional in enumerate(command.positionals):
            if positional.value.kind in ("file", "dir", "choices"):
                at = f"{fn}_at {_fish_text(command.name)} {index}"
                if positional.many:
                    at = f"{fn}_in {_fish_text(command.name)}"
                value = _fish_value(positional.value).replace("-r -F", "-F").replace("-x ", "")
                lines.append(f"complete -c {prog} -n {_fish_text(at)} {value}")
    return state + "\n".join(lines) + "\n"
