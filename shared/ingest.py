"""Draining the event stream into SQL through a Redis consumer group.

Guarantees, and how each is kept:
- *Stored once.* Rows are keyed on the producer's ``event_id`` and inserted with ON CONFLICT DO
  NOTHING, so a batch replayed after a crash (or an event the producer sent twice) is stored once.
- *Nothing lost.* Entries are acknowledged only after the transaction holding their rows commits.
  A consumer that dies leaves its entries pending; after ``reclaim_idle_ms`` another consumer claims
  them (XPENDING + XCLAIM) and stores them again, harmlessly.
- *Bad input never blocks the rest.* An event that fails validation, or that the database refuses,
  goes to ``dead_letters`` with its raw bytes and the reason; the other events of its entry are stored. An entry delivered more than
  ``max_deliveries`` times (it crashed or hung its consumers each time) goes there unprocessed.
- *Trimming is safe.* Only entries the group has acknowledged are trimmed (XTRIM MINID below the
  oldest pending entry); producers never trim. The stream's size is bounded by producers, which stop
  appending at their ``stream_cap`` and buffer locally (``promptloop_client.Client``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

import redis
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from .constants import BATCH_FIELD, DRAIN_SLOT_PREFIX, FIELD, GROUP, STREAM
from .events import InvalidEvent, parse_event
from .leases import acquire
from .settings import Settings
from .store import event_row, insert_dead_letters, insert_events

log = logging.getLogger(__name__)

#: A consumer with nothing pending that has been idle this long is removed from the group.
STALE_CONSUMER_MS = 3_600_000


@dataclass
class DrainStats:
    """What one drain call did."""

    batches: int = 0
    #: Stream entries read; each holds one event or a producer's batch.
    entries: int = 0
    #: Events read (stored + duplicates + dead).
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    dead: int = 0
    reclaimed: int = 0
    #: True when the call stopped on its time budget with entries still waiting.
    backlog: bool = False


@dataclass
class _Parsed:
    item_id: str
    raw: bytes
    kind: str
    row: tuple


def _sid(stream_id) -> str:
    return stream_id.decode() if isinstance(stream_id, bytes) else stream_id


def entry_items(stream_id, fields) -> tuple[list[tuple[str, bytes]], str | None]:
    """The events in one stream entry as ``(item_id, raw)``, or a reason the entry holds none.

    A batch entry's events are ``<stream id>/<line>``; a single-event entry's is the stream id.
    """
    sid = _sid(stream_id)
    if fields and BATCH_FIELD in fields:
        return [(f"{sid}/{i}", line) for i, line in enumerate(fields[BATCH_FIELD].split(b"\n"))], None
    if fields and FIELD in fields:
        return [(sid, fields[FIELD])], None
    names = ", ".join(k.decode(errors="replace") for k in (fields or {}))
    return [], f"entry has no field 'e' or 'b' (fields: {names or 'none'})"


def consumer_name() -> str:
    """This process's consumer name: unique per host and process, so a restart is a new consumer."""
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(r: redis.Redis, stream: str = STREAM, group: str = GROUP) -> None:
    """Create the stream and consumer group if missing; id 0 so events sent before it are read too."""
    try:
        r.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def is_outage(exc: DBAPIError) -> bool:
    """Whether a database error is about the connection or server (retry later), not about the data."""
    return isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated


class Ingestor:
    """Reads the stream as one consumer of the group and writes what it reads to SQL."""

    def __init__(self, r: redis.Redis, engine: Engine, *, consumer: str | None = None, batch_size: int = 50,
                 max_deliveries: int = 5, reclaim_idle_ms: int = 60_000, max_event_bytes: int = 256 * 1024,
                 idle_wait_ms: int = 250, stream: str = STREAM, group: str = GROUP):
        self.redis = r
        self.engine = engine
        self.consumer = consumer or consumer_name()
        self.batch_size = batch_size
        self.max_deliveries = max_deliveries
        self.reclaim_idle_ms = reclaim_idle_ms
        self.max_event_bytes = max_event_bytes
        self.idle_wait_ms = idle_wait_ms
        self.stream = stream
        self.group = group
        self._group_ready = False

    @classmethod
    def from_settings(cls, r: redis.Redis, engine: Engine, settings: Settings, **kwargs) -> "Ingestor":
        """An ingestor with the limits configured in ``settings``."""
        return cls(r, engine, batch_size=settings.ingest_batch_size, max_deliveries=settings.ingest_max_deliveries,
                   reclaim_idle_ms=settings.ingest_reclaim_idle_ms,
                   max_event_bytes=settings.ingest_max_event_bytes,
                   idle_wait_ms=settings.ingest_idle_wait_ms, **kwargs)

    def drain(self, budget_s: float = 10.0) -> DrainStats:
        """Store everything waiting (reclaimed first, then new), for up to ``budget_s`` seconds.

        Raises on a Redis or database outage; whatever was read but not stored stays pending and is
        reclaimed by a later drain.
        """
        if not self._group_ready:
            ensure_group(self.redis, self.stream, self.group)
            self._group_ready = True
        # Reclaiming bumps delivery counts; don't let a database outage push good events to the dead letters.
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        stats = DrainStats()
        deadline = time.monotonic() + budget_s
        self._forget_stale_consumers()
        while self._reclaim(stats) and time.monotonic() < deadline:
            pass
        block = None
        while time.monotonic() < deadline:
            reply = self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.batch_size,
                                          block=block)
            entries = reply[0][1] if reply else []
            if entries:
                self._process(entries, stats)
                self.trim()
            elif block is not None:
                break  # nothing arrived for idle_wait_ms: the stream is drained
            # After a short read the producers are barely ahead: wait a moment for more rather than
            # ending, so a steady flow is drained by one loop instead of one task per beat tick.
            block = None if len(entries) == self.batch_size else self.idle_wait_ms
        else:
            stats.backlog = True
        return stats

    # ----- reading ---------------------------------------------------------------------------

    def _reclaim(self, stats: DrainStats) -> bool:
        """Claim entries other (dead) consumers left pending; True if a full batch was claimed."""
        pending = self.redis.xpending_range(self.stream, self.group, min="-", max="+", count=self.batch_size,
                                            idle=self.reclaim_idle_ms)
        if not pending:
            return False
        deliveries = {p["message_id"]: p["times_delivered"] + 1 for p in pending}
        claimed = self.redis.xclaim(self.stream, self.group, self.consumer, min_idle_time=self.reclaim_idle_ms,
                                    message_ids=list(deliveries))
        stats.reclaimed += len(claimed)
        poison = [(sid, fields) for sid, fields in claimed if deliveries.get(sid, 0) > self.max_deliveries]
        fresh = [(sid, fields) for sid, fields in claimed if deliveries.get(sid, 0) <= self.max_deliveries]
        if poison:
            letters = [self._letter(sid, self._whole(fields),
                                    f"not acknowledged after {deliveries[sid] - 1} deliveries: its consumers "
                                    "died or hung each time", deliveries[sid]) for sid, fields in poison]
            with self.engine.begin() as conn:
                insert_dead_letters(conn, letters)
            self.redis.xack(self.stream, self.group, *[sid for sid, _ in poison])
            stats.dead += len(poison)
        if fresh:
            self._process(fresh, stats, deliveries)
        return len(pending) == self.batch_size

    def _forget_stale_consumers(self) -> None:
        for c in self.redis.xinfo_consumers(self.stream, self.group):
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            if c["pending"] == 0 and c["idle"] > STALE_CONSUMER_MS and name != self.consumer:
                self.redis.xgroup_delconsumer(self.stream, self.group, name)

    # ----- storing ---------------------------------------------------------------------------

    @staticmethod
    def _whole(fields) -> bytes:
        """An entry's payload (or all its fields, ``k=v&...``, when it has none), for the dead letters."""
        fields = fields or {}
        return fields.get(BATCH_FIELD) or fields.get(FIELD) or b"&".join(k + b"=" + v for k, v in fields.items())

    @staticmethod
    def _letter(item_id, raw: bytes | None, reason: str, deliveries: int) -> dict:
        return {"stream_id": _sid(item_id), "raw": raw or b"", "reason": reason, "delivery_count": deliveries}

    def _process(self, entries: list, stats: DrainStats, deliveries: dict | None = None) -> None:
        parsed: list[_Parsed] = []
        letters: list[dict] = []
        for sid, fields in entries:
            count = (deliveries or {}).get(sid, 1)
            items, problem = entry_items(sid, fields)
            if problem:
                letters.append(self._letter(sid, self._whole(fields), problem, count))
            for item_id, raw in items:
                try:
                    event = parse_event(raw, self.max_event_bytes)
                except InvalidEvent as exc:
                    letters.append(self._letter(item_id, raw, str(exc), count))
                    continue
                parsed.append(_Parsed(item_id, raw, event.kind, event_row(event)))
        refused = 0
        try:
            inserted = self._store(parsed, letters)
        except DBAPIError as exc:
            if is_outage(exc):
                raise
            log.warning("database refused a batch (%s); storing it row by row", exc.orig)
            inserted, refused = self._store_one_by_one(parsed, letters)
        self.redis.xack(self.stream, self.group, *[sid for sid, _ in entries])
        stats.batches += 1
        stats.entries += len(entries)
        stats.read += len(parsed) + len(letters)
        stats.stored += inserted
        stats.duplicates += len(parsed) - refused - inserted
        stats.dead += len(letters)

    def _store(self, parsed: list[_Parsed], letters: list[dict]) -> int:
        by_kind: dict[str, list[tuple]] = {}
        for p in parsed:
            by_kind.setdefault(p.kind, []).append(p.row)
        inserted = 0
        with self.engine.begin() as conn:
            for kind, rows in by_kind.items():
                inserted += insert_events(conn, kind, rows)
            insert_dead_letters(conn, letters)
        return inserted

    def _store_one_by_one(self, parsed: list[_Parsed], letters: list[dict]) -> tuple[int, int]:
        """Isolate the rows the database refuses (one transaction each) and dead-letter just those."""
        inserted = refused = 0
        for p in parsed:
            try:
                with self.engine.begin() as conn:
                    inserted += insert_events(conn, p.kind, [p.row])
            except DBAPIError as exc:
                if is_outage(exc):
                    raise
                letters.append(self._letter(p.item_id, p.raw, f"database refused: {exc.orig}", 1))
                refused += 1
        with self.engine.begin() as conn:
            insert_dead_letters(conn, letters)
        return inserted, refused

    # ----- trimming --------------------------------------------------------------------------

    def trim(self) -> None:
        """Delete entries every consumer group has acknowledged, and nothing else.

        Approximate (``~``): Redis frees whole internal nodes only, at most 10,000 entries a call;
        called after every batch, it keeps up.
        """
        pipe = self.redis.pipeline(transaction=True)
        pipe.xinfo_groups(self.stream)
        pipe.xpending(self.stream, self.group)
        groups, summary = pipe.execute()
        if len(groups) != 1:
            return  # another group may still need the entries: leave trimming to whoever owns it
        if summary["pending"]:
            minid = summary["min"]
        else:
            last = groups[0]["last-delivered-id"]
            last = last.decode() if isinstance(last, bytes) else last
            ms, seq = last.split("-")
            minid = f"{ms}-{int(seq) + 1}"
        self.redis.xtrim(self.stream, minid=minid, approximate=True)


def drain_in_slot(ingestor: Ingestor, slots: int, budget_s: float) -> DrainStats | None:
    """Drain if one of ``slots`` drain leases is free; None when all are busy (enough drainers run).

    The lease outlives the budget by a margin; a drainer killed mid-batch frees its slot when the
    lease expires, and its entries are reclaimed by the next drain.
    """
    lease = acquire(ingestor.redis, DRAIN_SLOT_PREFIX, slots, ttl_ms=int((budget_s + 60) * 1000))
    if lease is None:
        return None
    with lease:
        return ingestor.drain(budget_s)
