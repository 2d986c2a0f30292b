"""One SQLAlchemy engine per process, created lazily and discarded after fork."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from .settings import Settings, get_settings

_engine: Engine | None = None


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so several processes can share it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, **kwargs)


def get_engine(settings: Settings | None = None) -> Engine:
    """The process's engine for ``settings`` (default: the environment's)."""
    global _engine
    if _engine is None:
        _engine = make_engine((settings or get_settings()).sqlalchemy_url)
    return _engine


def reset_engine() -> None:
    """Forget the engine after fork; the parent's pooled connections must not be shared."""
    global _engine
    if _engine is not None:
        _engine.dispose(close=False)
    _engine = None
