"""What a person sees when a command fails: one sentence saying what to do, never a traceback.

``--debug`` (anywhere on the command line) or ``PROMPTLOOP_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import re
import sys

import typer
from rich.console import Console

_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def _hide(text: str) -> str:
    return _PASSWORD.sub(r"\1***@", text)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


def explain(exc: BaseException) -> str:
    """One sentence for ``exc``: what happened and what to do."""
    import redis
    from sqlalchemy import exc as sa

    from shared.settings import SettingsError, get_settings

    text = _hide(_first_line(getattr(exc, "orig", None) or exc))
    if isinstance(exc, SettingsError):
        return str(exc)
    if isinstance(exc, (sa.OperationalError, sa.ProgrammingError)) and (
            "no such table" in text or "does not exist" in text and "relation" in text):
        return "the database has no schema yet: run `promptloop init` first"
    if isinstance(exc, sa.DBAPIError | sa.ArgumentError):
        try:
            where = _hide(get_settings().sqlalchemy_url)
        except Exception:
            where = "DATABASE_URL"
        return f"cannot use the database at {where} ({text}); check DATABASE_URL and that the server is up"
    if isinstance(exc, redis.RedisError):
        try:
            where = _hide(get_settings().redis_url)
        except Exception:
            where = "REDIS_URL"
        return f"cannot use Redis at {where} ({text}); start redis-server or set REDIS_URL"
    if isinstance(exc, (ValueError, LookupError, FileNotFoundError, PermissionError)):
        return text
    return f"{exc.__class__.__name__}: {text}"


def _debug_requested() -> bool:
    if "--debug" in sys.argv[1:]:
        sys.argv.remove("--debug")
        os.environ["PROMPTLOOP_DEBUG"] = "1"
    return os.environ.get("PROMPTLOOP_DEBUG", "").lower() in ("1", "true", "yes")


class App(typer.Typer):
    """A Typer app whose console entry point turns unexpected errors into one sentence."""

    def __call__(self, *args, **kwargs):
        debug = _debug_requested()
        try:
            return super().__call__(*args, **kwargs)
        except KeyboardInterrupt:
            Console(stderr=True).print("interrupted")
            sys.exit(130)
        except Exception as exc:
            if debug:
                raise
            Console(stderr=True, soft_wrap=True).print(f"[red]{explain(exc)}[/red] (--debug shows the traceback)",
                                                       markup=True, highlight=False)
            sys.exit(1)
