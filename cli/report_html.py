"""``promptloop report``: the PNG plots and the self-contained HTML page (``shared.report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def report(out: Optional[Path] = typer.Option(None, "--out", help="Folder for report.html and the PNGs "
                                                                   "(default: DATA_DIR/report)."),
           hours: Optional[float] = typer.Option(None, help="Metric events of the last HOURS only (default: all)."),
           ) -> None:
    """Plots of quality, latency, rollouts and optimizations, and one HTML page that shows them with the tables."""
    from sqlalchemy.exc import SQLAlchemyError

    from cli.main import console, settings
    from cli.runtime import require_migrated
    from shared.db import get_engine
    from shared.report import write_report

    if hours is not None and not hours > 0:
        raise typer.BadParameter("--hours must be a positive number")
    s = settings()
    require_migrated(console, s)
    out_dir = out if out is not None else s.data_dir / "report"
    try:
        result = write_report(get_engine(s), out_dir, hours=hours)
    except SQLAlchemyError as exc:
        console.print(f"[red]the database could not be read: {str(exc).splitlines()[0]}[/red]")
        raise typer.Exit(1) from None
    except OSError as exc:
        console.print(f"[red]could not write the report to {out_dir}: {exc}[/red]")
        raise typer.Exit(1) from None
    c = result.counts
    console.print(f"{c['metric_events']} metric events, {c['rollouts']} rollouts, {c['optimization_runs']} "
                  f"optimization runs, {c['alerts']} alerts; plots: {', '.join(result.pngs) or 'none (no data yet)'}")
    console.print(f"report written to {result.html.resolve()}", soft_wrap=True)
