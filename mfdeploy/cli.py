"""`mfdeploy` command line: one sub-command per module in mfdeploy/commands/.

User mistakes (MfdeployError) become one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys

from mfdeploy import __version__
from mfdeploy.errors import MfdeployError
from mfdeploy.extras import missing_module_message

# Each module defines NAME, HELP, add_arguments(parser) and run(args) -> int.
COMMANDS = (
    "variants",
    "predict",
    "export",
    "inspect",
    "data",
    "evaluate",
    "verify",
    "bench",
    "report",
    "bundle",
)

EXIT_BAD_INPUT = 2
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `finally` and staging cleanup runs."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM (CI cancelling a job, `kill`) unwinds like SIGINT instead of killing outright,
    which left a `.out.XXXX` staging directory behind after every cancelled export."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (main() called from a worker thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mfdeploy",
        description="Mobile vision transformers (Mobile-Former, MobileViTv2; EfficientNet-Lite0 "
        "as the CNN yardstick) from a PyTorch checkpoint to ONNX / TFLite / Core ML / ExecuTorch "
        "artifacts for Android, iOS and web apps, each verified on its runtime and timed.",
    )
    parser.add_argument("--version", action="version", version=f"mfdeploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"mfdeploy.commands.{name}")
        cmd = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=(module.__doc__ or module.HELP).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (exit 2), --help / --version (0): a return code
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        with _sigterm_raises():
            return int(args._run(args) or 0)
    except MfdeployError as exc:
        print(f"mfdeploy: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ImportError as exc:  # an optional extra that is not installed
        print(f"mfdeploy: error: {missing_module_message(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Terminated:
        print("mfdeploy: terminated", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        print("mfdeploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
