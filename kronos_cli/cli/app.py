"""The `kronos` command: a Typer app whose commands are thin layers over the library."""

from __future__ import annotations

import errno
import logging
import os
import traceback

import typer
from typer.core import TyperGroup

from kronos_cli import __version__
from kronos_cli.cli import backtest as backtest_cmd
from kronos_cli.cli import demo as demo_cmd
from kronos_cli.cli import demo_data as demo_data_cmd
from kronos_cli.cli import download as download_cmd
from kronos_cli.cli import env as env_cmd
from kronos_cli.cli import evaluate as evaluate_cmd
from kronos_cli.cli import export as export_cmd
from kronos_cli.cli import fetch as fetch_cmd
from kronos_cli.cli import mcp_cmd
from kronos_cli.cli import models as models_cmd
from kronos_cli.cli import pipeline as pipeline_cmd
from kronos_cli.cli import predict as predict_cmd
from kronos_cli.cli import prep as prep_cmd
from kronos_cli.cli import runs as runs_cmd
from kronos_cli.cli import serve as serve_cmd
from kronos_cli.cli import signals as signals_cmd
from kronos_cli.cli import train as train_cmd
from kronos_cli.cli import walkforward as walkforward_cmd
from kronos_cli.cli.common import as_flags, command_flags, err_console, error_text, setup_logging
from kronos_cli.cli.config_cmd import config_app
from kronos_cli.core.errors import KronosError, WorkerDone


def _is_cli_control(exc: BaseException) -> bool:
    """Exits, aborts and usage errors belong to the CLI framework (typer vendors click in newer releases)."""
    return isinstance(exc, (typer.Exit, typer.Abort)) or any(c.__name__ == "ClickException" for c in type(exc).__mro__)


def _debug(ctx) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("KRONOS_DEBUG", "") not in ("", "0")


class KronosGroup(TyperGroup):
    """Turns errors into one line and an exit code: 2 for the user's mistakes, 1 for runtime failures."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KronosError as exc:
            if _debug(ctx):
                traceback.print_exc()
            text = error_text(exc, command_flags(ctx))
            err_console.print(f"[bold red]error:[/] {text}", markup=True, highlight=False)
            raise typer.Exit(KronosError.exit_code) from None
        except WorkerDone as done:  # this process's share of a distributed forecast is with rank 0
            logging.getLogger("kronos_cli.cli").info("%s", done)
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # a runtime failure, not the user's mistake
            if _is_cli_control(exc):
                raise
            if _debug(ctx):
                traceback.print_exc()
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                err_console.print(
                    f"[bold red]error:[/] could not write {exc.filename or 'a file'}: {exc.strerror} (a full disk or "
                    f"the file-size limit, ulimit -f); outputs are written atomically, nothing half-written remains",
                    highlight=False,
                )
                raise typer.Exit(1) from None
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            msg = as_flags(msg, getattr(exc, "settings", ()), command_flags(ctx))  # a failure may name settings too
            err_console.print(
                f"[bold red]error:[/] {type(exc).__name__}: {msg} (run with --debug for the traceback)", highlight=False
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=KronosGroup,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion and --show-completion (bash, zsh, fish, PowerShell)
    help="Fine-tune Kronos on your market data, backtest it and ship it.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kronos-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Full tracebacks and debug logs."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only warnings and errors on stderr."),
) -> None:
    setup_logging(debug=debug or os.environ.get("KRONOS_DEBUG", "") not in ("", "0"), quiet=quiet)


app.command("demo")(demo_cmd.demo)
app.command("pipeline")(pipeline_cmd.pipeline)
app.command("prep")(prep_cmd.prep)
app.command("train-tokenizer")(train_cmd.train_tokenizer)
app.command("train-predictor")(train_cmd.train_predictor)
app.command("backtest")(backtest_cmd.backtest)
app.command("signals")(signals_cmd.signals)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("walkforward")(walkforward_cmd.walkforward)
app.command("export")(export_cmd.export)
app.command("predict")(predict_cmd.predict)
app.command("serve")(serve_cmd.serve)
app.command("mcp")(mcp_cmd.mcp)
app.command("demo-data")(demo_data_cmd.demo_data)
app.command("env")(env_cmd.env)
app.command("report")(runs_cmd.report)
app.add_typer(runs_cmd.runs_app, name="runs")
app.command("fetch")(fetch_cmd.fetch)
app.command("download")(download_cmd.download)
app.command("models")(models_cmd.models)
app.add_typer(config_app, name="config")


def main() -> None:
    import sys

    # --debug is accepted anywhere on the line, not only before the command.
    if "--debug" in sys.argv[2:]:
        sys.argv = [a for a in sys.argv if a != "--debug"]
        os.environ["KRONOS_DEBUG"] = "1"
    app()
