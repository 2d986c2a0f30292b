"""Looking at and replaying dead letters.

Replaying is safe: events are stored once per ``event_id``, so an event that was stored after all is
skipped, and an event that is still invalid comes back as a new dead letter.
"""

from __future__ import annotations

import redis
from sqlalchemy import Engine, delete, select

from .constants import BATCH_FIELD, STREAM
from .models import DeadLetter


def replay(engine: Engine, r: redis.Redis, ids: list[int] | None = None, stream: str = STREAM) -> int:
    """Append dead letters (all, or those with ``ids``) to the stream again and delete them; returns how many.

    Each raw payload goes back as a batch entry (one event per line), the form producers send.
    The rows are deleted only after Redis accepted the entries, so a failure replays nothing twice
    and loses nothing.
    """
    query = select(DeadLetter.id, DeadLetter.raw).order_by(DeadLetter.id)
    if ids is not None:
        query = query.where(DeadLetter.id.in_(ids))
    with engine.connect() as conn:
        letters = conn.execute(query).all()
    if not letters:
        return 0
    pipe = r.pipeline(transaction=True)
    for _, raw in letters:
        pipe.xadd(stream, {BATCH_FIELD: raw})
    pipe.execute()
    with engine.begin() as conn:
        conn.execute(delete(DeadLetter).where(DeadLetter.id.in_([i for i, _ in letters])))
    return len(letters)


def missing_ids(engine: Engine, ids: list[int]) -> list[int]:
    """Those of ``ids`` that name no dead letter (replayed already, or never there), in order."""
    if not ids:
        return []
    with engine.connect() as conn:
        present = set(conn.execute(select(DeadLetter.id).where(DeadLetter.id.in_(ids))).scalars())
    return [i for i in dict.fromkeys(ids) if i not in present]
