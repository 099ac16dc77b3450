"""The command line's machinery on click: argparse-style one-line errors, option prefixes, value types."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

#: Options given to every command: ``--debug`` shows the traceback of an error.
DEBUG: dict[str, bool] = {"on": False}


def _long_names(command: click.Command) -> dict[str, click.Parameter]:
    # Not get_params(): it would build and cache the help option before the context names -h.
    names: dict[str, click.Parameter] = {"--help": click.Option(["--help"], is_flag=True)}
    for param in command.params:
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("--"):
                names[name] = param
    return names


def expand_prefixes(command: click.Command, args: Sequence[str], *, stop_at_positional: bool,
                    ctx: click.Context | None = None) -> list[str]:
    """``--star`` -> ``--start``: unique prefixes of long options, as argparse allows; ambiguous ones refused.

    A value after an option that takes one is left alone (``--start -1h`` stays as it is).
    """
    options = _long_names(command)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                out.extend(args[i:])
                break
            out.append(arg)
            i += 1
            continue
        name, eq, value = arg.partition("=")
        if name.startswith("--") and name not in options:
            matches = sorted(o for o in options if o.startswith(name))
            if len(matches) > 1:
                raise click.UsageError(f"ambiguous option: {name} could match {', '.join(matches)}", ctx)
            if matches:
                name = matches[0]
        out.append(name + eq + value)
        param = options.get(name) if name.startswith("--") else None
        if param is None and not name.startswith("--"):
            param = next((p for p in command.params if name in p.opts), None)
        takes_value = isinstance(param, click.Option) and not param.is_flag and not param.count
        if takes_value and not eq and i + 1 < len(args):
            out.append(args[i + 1])  # its value, even one starting with "-" (a relative time)
            i += 1
        i += 1
    return out


@contextmanager
def _in_context(ctx: click.Context) -> Iterator[None]:
    """Name the command in the errors click's option parser raises without it (an option missing its value,
    a flag given one), so the hint reads ``meshlab report --help``, not ``meshlab --help``."""
    try:
        yield
    except click.UsageError as exc:
        if exc.ctx is None:
            exc.ctx = ctx
        raise


class Command(click.Command):
    """A command whose required arguments are all named at once, as argparse does."""

    def __init__(self, *args: Any, needs: Sequence[str] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        #: parameter names that must be given (checked together after parsing)
        self.needs = tuple(needs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with _in_context(ctx):
            rest = super().parse_args(ctx, expand_prefixes(self, args, stop_at_positional=False, ctx=ctx))
        missing = [self._shown(name) for name in self.needs if ctx.params.get(name) in (None, "")]
        if missing:
            raise click.UsageError(f"the following arguments are required: {', '.join(missing)}", ctx)
        return rest

    def _shown(self, name: str) -> str:
        param = next(p for p in self.params if p.name == name)
        if isinstance(param, click.Option):
            return max(param.opts, key=len)
        return name


class Group(click.Group):
    """A group that names a missing or unknown command as argparse does, and loads commands lazily.

    ``lazy`` maps a command name to ``("module:attribute", short help)``: the module is imported
    only when that command runs or shows its help, so ``meshlab --help`` imports none of them
    (click's LazyGroup pattern, with the short help kept here for the command list).
    """

    command_class = Command

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module, _, attribute = self.lazy[cmd_name][0].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                rows.append((name, self.lazy[name][1]))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - max(map(len, self.commands),
                                                                                         default=0))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = expand_prefixes(self, args, stop_at_positional=True, ctx=ctx)
        if not [a for a in args if not a.startswith("-")] and not {"--help", "-h", "--version"} & set(args):
            raise click.UsageError("the following arguments are required: command", ctx)
        with _in_context(ctx):
            return super().parse_args(ctx, args)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                               list[str]]:
        name = args[0]
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            choices = ", ".join(self.list_commands(ctx))
            raise click.UsageError(f"argument command: invalid choice: {name!r} (choose from {choices})", ctx)
        return super().resolve_command(ctx, args)


def describe_usage_error(exc: click.UsageError) -> str:
    """A click usage error as argparse would say it, ``query: --timeout: must be ... (see: ...)``."""
    ctx = exc.ctx
    path = ctx.command_path if ctx is not None else "meshlab"
    command = path.removeprefix("meshlab").strip()
    if isinstance(exc, click.BadParameter) and exc.param is not None:
        param = exc.param
        name = max(param.opts, key=len) if isinstance(param, click.Option) else (param.name or "argument")
        message = exc.message if exc.message.startswith(name) else f"{name}: {exc.message}"
    elif isinstance(exc, click.NoSuchOption):
        message = f"unrecognized arguments: {exc.option_name}"
        if exc.possibilities:
            message += f" (did you mean {', '.join(sorted(exc.possibilities))}?)"
    else:
        message = exc.format_message()
    where = f"{command}: " if command else ""
    return f"{where}{message} (see: {path} --help)"


class Checked(click.ParamType):
    """A value type from a function that raises ValueError with the message to show."""

    def __init__(self, name: str, check: Callable[[str], Any]):
        self.name = name
        self._check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._check(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def positive(kind: type[float] | type[int], what: str) -> Checked:
    """A positive, finite number of ``what``."""
    def convert(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number of {what}") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"must be a positive number of {what}, not {text}")
        return value
    return Checked("NUMBER", convert)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"a port is 0 to 65535 (0: any free port), not {port}")
    return port


def _meshes(text: str) -> str:
    """'linkerd, istio' -> 'linkerd,istio': spaces around the commas are allowed."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ValueError(f"{text!r} is not a comma-separated list of meshes such as linkerd,istio")
    return ",".join(names)


_DURATION_RE = r"(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?"


def _fast_duration(text: str) -> bool:
    """A positive Prometheus duration or number of seconds, told without pandas."""
    import re

    if re.fullmatch(_DURATION_RE, text) and any(ch in "123456789" for ch in text):
        return True
    try:
        return math.isfinite(float(text)) and float(text) > 0
    except ValueError:
        return False


def check_duration(text: str, name: str) -> str:
    """``text`` if it is a positive duration (``30s``, ``1h30m``, ``15``); the value is passed on as given."""
    if not _fast_duration(text):
        from ..timeutil import to_timedelta  # the full grammar and its messages

        if to_timedelta(text, name=name).total_seconds() <= 0:
            raise ValueError(f"must be a positive duration such as 30s, 1m or 1h30m, not {text}")
    return text


def check_time(text: str, name: str) -> str:
    """``text`` if it is a time meshlab reads (``now``, ``-5m``, unix seconds, ISO 8601); passed on as given.

    The common forms are told without pandas, so that an unreachable server is reported at once;
    anything else goes to :func:`meshlab.timeutil.to_timestamp`, which decides.
    """
    import re
    from datetime import datetime

    lowered = text.strip().lower()
    relative = re.fullmatch(r"(now)?\s*([+-]?)\s*([0-9a-z]+)", lowered)
    if lowered == "now" or (relative and re.fullmatch(_DURATION_RE, relative[3])
                            and (relative[1] is None or relative[2]) and relative[3][:1].isdigit()):
        return text
    if re.fullmatch(r"\d+(\.\d*)?", lowered):
        return text
    try:
        if 1678 <= datetime.fromisoformat(text.strip()).year <= 2261:
            return text
    except ValueError:
        pass
    from ..timeutil import to_timestamp

    to_timestamp(text, name=name)
    return text


def time_type(name: str) -> Checked:
    return Checked("TIME", lambda text: check_time(text, name))


def duration_type(name: str) -> Checked:
    return Checked("DURATION", lambda text: check_duration(text, name))


PORT = Checked("PORT", _port)
MESHES = Checked("MESH[,MESH...]", _meshes)
