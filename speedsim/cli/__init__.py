"""Command line: ``speedsim run | serve | trace | sweep | plot | list``, one module per command.

Exit status: 0 success, 2 bad input (one line naming the file or option and the
key path; a command-line syntax error is two lines: the error and where to find
help), 3 a sweep that finished with failed points (each an error row that says
why), 1 a bug (the traceback is printed: it is ours to fix). A reader that
stops early (``speedsim sweep --dry-run … | head``) ends the command quietly. Files are written only
through ``speedsim.cli.io`` (result directories, figures), the sweep result
store ``speedsim.report.store`` and ``speedsim.report.io`` (the atomic writers
both use).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from speedsim import __version__
from speedsim.cli import catalogue, plot, run, serve, sweep, trace
from speedsim.config.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse, with a syntax error in two lines (argparse prints the whole usage first,
    which wraps to several lines for every subcommand)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="speedsim", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"speedsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    serve.add_parser(sub)
    trace.add_parser(sub)
    sweep.add_parser(sub)
    plot.add_parser(sub)
    catalogue.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return _command(argv)[0]


def _command(argv: Sequence[str] | None) -> tuple[int, argparse.Namespace]:
    """(exit status, the parsed arguments): a command may leave what it built on them
    (``cmd_run``: ``args.result``) for ``console`` to keep until the process exits."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args), args
    except ConfigError as exc:
        print(f"speedsim: error: {exc}", file=sys.stderr)
        return 2, args
    except KeyboardInterrupt:
        print("speedsim: interrupted", file=sys.stderr)
        return 130, args
    except BrokenPipeError:
        _silence_stdout()
        return 0, args


def console() -> None:
    """The ``speedsim`` executable (and ``python -m speedsim``): ``main``, then, like mypy's
    fast exit, leave without freeing what the command built object by object (a 7B run's
    millions of objects take ~0.2 s to free, for nothing): the output flushed, then
    ``os._exit``. Everything a command writes is closed before ``main`` returns; an
    exception (a bug: exit status 1, with its traceback) leaves the usual way."""
    code, _kept = _command(None)  # ``_kept``: alive until ``os._exit``, never freed
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            _silence_stdout()
    os._exit(code)


def _silence_stdout() -> None:
    """The reader of our output went away: point stdout at /dev/null, so that the
    interpreter's final flush does not raise again (Python's documented recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (tests capture it)
        pass
