"""`kronos runs ls|show|compare|rm` and `kronos report`: the runs kept under `<output_dir>/runs/`, and their pages."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, print_json, print_tables

runs_app = typer.Typer(help="List, show, compare and remove kept runs.", no_args_is_help=True, rich_markup_mode=None)
OUTPUT_DIR = typer.Option(
    None,
    "--output-dir",
    help="The output_dir holding runs/ [default: the config's, else ./outputs].",
    show_default=False,
)
RUN = typer.Argument(..., help="A run id, a unique prefix of one, or latest.", show_default=False)


def _root(config: Path | None, output_dir: Path | None) -> Path:
    """`<output_dir>/runs`: from --output-dir, else the config's output_dir (its default: ./outputs)."""
    from kronos_cli.records.runs import runs_root

    if output_dir is not None:
        return output_dir.expanduser().resolve() / "runs"
    return runs_root(opt.build_config(config, None, None))


@runs_app.command("ls")
def ls(config: Path | None = opt.CONFIG, output_dir: Path | None = OUTPUT_DIR, json_out: bool = opt.JSON) -> None:
    """Every kept run, oldest first: id, command, model, data, key scores, when written."""
    from kronos_cli.records.store import runs
    from kronos_cli.records.summary import runs_table, summarise

    root = _root(config, output_dir)
    summaries = [summarise(root, p) for p in runs(root)]
    if json_out:
        print_json([s.to_json() for s in summaries])
        return
    print_tables([runs_table(summaries, f"{len(summaries)} runs in {root}")])


@runs_app.command("show")
def show(
    run: str = RUN, config: Path | None = opt.CONFIG, output_dir: Path | None = OUTPUT_DIR, json_out: bool = opt.JSON
) -> None:
    """One run: its scores, files and report."""
    from kronos_cli.records.store import find_run
    from kronos_cli.records.summary import runs_table, summarise

    root = _root(config, output_dir)
    s = summarise(root, find_run(root, run))
    if json_out:
        print_json(s.to_json(full=True))
        return
    print_tables([runs_table([s], f"run {s.id}")])
    for p in sorted(Path(s.path).iterdir()):
        console.print(f"  {p}", markup=False, highlight=False)


@runs_app.command("compare")
def compare(
    runs: list[str] = typer.Argument(..., help="Two or more run ids (or unique prefixes).", show_default=False),
    config: Path | None = opt.CONFIG,
    output_dir: Path | None = OUTPUT_DIR,
    json_out: bool = opt.JSON,
) -> None:
    """Runs side by side: their key scores and the settings that differ."""
    from kronos_cli.core.errors import KronosError
    from kronos_cli.records.store import find_run
    from kronos_cli.records.summary import compare_tables, differing_settings, summarise

    if len(runs) < 2:
        raise KronosError("compare needs two or more runs: kronos runs compare ID ID...")
    root = _root(config, output_dir)
    summaries = [summarise(root, find_run(root, r)) for r in runs]
    if json_out:
        print_json({"runs": [s.to_json() for s in summaries], "settings": differing_settings(summaries)})
        return
    print_tables(compare_tables(summaries))


@runs_app.command("rm")
def rm(
    runs: list[str] = typer.Argument(..., help="Run ids (or unique prefixes) to delete.", show_default=False),
    config: Path | None = opt.CONFIG,
    output_dir: Path | None = OUTPUT_DIR,
    json_out: bool = opt.JSON,
) -> None:
    """Delete runs; a link to a deleted run (latest, backtest_results/NAME) moves to the newest left."""
    from kronos_cli.records.store import find_run, label, remove_run

    root = _root(config, output_dir)
    doomed = [find_run(root, r) for r in runs]  # every id checked before anything is deleted
    removed = [
        {"id": label(root, p), "links": [str(link) for link in remove_run(root, p)]} for p in dict.fromkeys(doomed)
    ]
    if json_out:
        print_json(removed)
        return
    for r in removed:
        console.print(f"removed {r['id']}", markup=False, highlight=False)


def report(
    run: str = typer.Argument(
        ..., help="A run directory, or a run id (or unique prefix) under runs/.", show_default=False
    ),
    config: Path | None = opt.CONFIG,
    output_dir: Path | None = OUTPUT_DIR,
    json_out: bool = opt.JSON,
) -> None:
    """Rebuild a backtest's, an evaluation's or a walk-forward's report.html from its results files."""
    from kronos_cli.walkforward import page as walkforward_page
    from kronos_cli.workflows.rebuild import named_run, rebuild_report

    given = Path(run).expanduser()
    directory = given if given.is_dir() else named_run(run, _root(config, output_dir))
    path = rebuild_report(directory, {"walkforward": walkforward_page.write_report})
    if json_out:
        print_json({"report": str(path)})
        return
    console.print(f"report: {path}", markup=False, highlight=False)
