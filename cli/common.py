"""What the CLI's command modules share: one console, the settings and engine, one way to fail."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

#: Not wrapped when piped (a copied line stays one line), as in cli.main.
console = Console(soft_wrap=not sys.stdout.isatty())


def env():
    """The environment's settings (or a clean exit naming the bad variable) and the engine."""
    from cli.main import settings
    from shared.db import get_engine

    s = settings()
    return s, get_engine(s)


def fail(message: str, code: int = 2):
    """One red sentence, then exit with ``code``. The message is plain text (a path or an error may hold
    brackets that Rich would otherwise read as markup)."""
    console.print(f"[red]{escape(message)}[/red]")
    raise typer.Exit(code)
