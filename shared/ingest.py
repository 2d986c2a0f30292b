"""Draining the event stream into SQL through a Redis consumer group.

Guarantees, and how each is kept:
- *Stored once.* Rows are keyed on the producer's ``event_id`` and inserted with ON CONFLICT DO
  NOTHING, so a batch replayed after a crash (or an event the producer sent twice) is stored once.
- *Nothing lost.* Entries are acknowledged only after the transaction holding their rows commits.
  A consumer that dies leaves its entries pending; after ``reclaim_idle_ms`` another consumer claims
  them (XPENDING + XCLAIM) and stores them again, harmlessly.
- *Bad input never blocks the rest.* An event that fails validation, or that the database refuses,
  goes to ``dead_letters`` with its raw bytes and the reason; the other events of its entry are stored
  (a refused batch is bisected down to the refused rows). An entry delivered more than
  ``max_deliveries`` times (it crashed or hung its consumers each time) goes there unprocessed.
- *Nothing ingest writes itself can wedge it.* Reasons are made storable (NUL spelled out); a dead
  letter the database still refuses is stored as a minimal one (its raw bytes, a fixed reason).
- *An outage is not bad input.* A database that is down or refuses writes (read-only, disk full)
  stops the drain with nothing acknowledged; the entries' delivery counts are put back as they were,
  so waiting out an outage never sends good events to the dead letters. A read-only database is
  noticed before anything is claimed.
- *Redis restarted empty.* The consumer group is (re)created on every drain, and when it vanishes
  mid-drain.
- *Trimming is safe.* Only entries the group has acknowledged are trimmed (XTRIM MINID below the
  oldest pending entry); producers never trim. The stream's size is bounded by producers, which stop
  appending at their ``stream_cap`` and buffer locally (``promptloop_client.Client``).
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from bisect import bisect_right
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from sqlalchemy import Engine

from .constants import BATCH_FIELD, DRAIN_SLOT_PREFIX, FIELD, GROUP, STREAM
from .events import InvalidEvent, parse_event
from .leases import acquire
from .settings import Settings
from .store import (
    DB_ERRORS, OUTAGE, ROWS, describe, error_code, event_row, insert_dead_letters, insert_events, refusal,
    refuses_writes, storable_text,
)

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


class DatabaseReadOnly(RuntimeError):
    """The database answers but refuses writes; draining now would only wear out delivery counts."""


class _Batch:
    """The events read in one batch, as parallel lists: one row tuple per event and nothing else per
    event that the garbage collector tracks (``_Parsed`` objects per event cost ~30% of parsing in
    collections). Where an event came from (for a dead letter) is worked out only when needed.
    """

    __slots__ = ("entries", "starts", "rows", "kinds", "lines", "_split")

    def __init__(self):
        #: ``(stream id, fields, deliveries)`` per entry that held events.
        self.entries: list[tuple] = []
        #: The index in ``rows`` of each entry's first event.
        self.starts: list[int] = []
        self.rows: list[tuple] = []
        self.kinds: list[str] = []
        #: Each event's line in its batch entry; -1 for a single-event entry.
        self.lines: list[int] = []
        self._split: dict[int, list[bytes]] = {}

    def origin(self, i: int) -> tuple[str, bytes, int]:
        """Event ``i``'s item id, raw bytes and delivery count."""
        e = bisect_right(self.starts, i) - 1
        sid, fields, deliveries = self.entries[e]
        line = self.lines[i]
        if line < 0:
            return _sid(sid), fields[FIELD], deliveries
        if e not in self._split:
            self._split[e] = fields[BATCH_FIELD].split(b"\n")
        return f"{_sid(sid)}/{line}", self._split[e][line], deliveries


class _Parsed:
    """Some of a batch's events (by index): what one transaction stores."""

    __slots__ = ("batch", "indices")

    def __init__(self, batch: _Batch, indices):
        self.batch = batch
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def halves(self) -> tuple["_Parsed", "_Parsed"]:
        half = len(self.indices) // 2
        return _Parsed(self.batch, self.indices[:half]), _Parsed(self.batch, self.indices[half:])


@contextmanager
def _collection_paused():
    """No cyclic garbage collection while a batch is parsed and stored.

    A batch allocates tens of thousands of row tuples that live until it is stored; each 700
    allocations would start a collection that walks them, and the older generations walk everything
    the worker holds. Nothing in a batch makes reference cycles worth collecting mid-batch, and the
    batch is freed by reference counting when it is done.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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


def group_missing(exc: redis.ResponseError) -> bool:
    """Whether Redis lost the stream or its group (restarted empty, failed over to an empty replica).

    NOGROUP from the stream commands, "no such key" from XINFO, and "... no longer exists" for an
    XREADGROUP that was blocked while the key went away (FLUSHALL).
    """
    message = str(exc)
    return message.startswith("NOGROUP") or "no such key" in message or "no longer exists" in message


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

    @classmethod
    def from_settings(cls, r: redis.Redis, engine: Engine, settings: Settings, **kwargs) -> "Ingestor":
        """An ingestor with the limits configured in ``settings``."""
        return cls(r, engine, batch_size=settings.ingest_batch_size, max_deliveries=settings.ingest_max_deliveries,
                   reclaim_idle_ms=settings.ingest_reclaim_idle_ms,
                   max_event_bytes=settings.ingest_max_event_bytes,
                   idle_wait_ms=settings.ingest_idle_wait_ms, **kwargs)

    def drain(self, budget_s: float = 10.0) -> DrainStats:
        """Store everything waiting (reclaimed first, then new), for up to ``budget_s`` seconds.

        Raises on a Redis or database outage (``DatabaseReadOnly`` when the database refuses writes);
        whatever was read but not stored stays pending, its delivery count as before, and is
        reclaimed by a later drain.
        """
        stats = DrainStats()
        deadline = time.monotonic() + budget_s
        # Not remembered between drains: a Redis restarted empty has lost the group.
        ensure_group(self.redis, self.stream, self.group)
        self._check_writable()
        try:
            self._drain(stats, deadline)
        except redis.ResponseError as exc:
            if not group_missing(exc):
                raise
            log.warning("the stream's consumer group vanished (%s); Redis lost its data? Recreating it", exc)
            ensure_group(self.redis, self.stream, self.group)
            self._drain(stats, deadline)
        return stats

    def _check_writable(self) -> None:
        # Claiming raises delivery counts and reading moves entries into the pending list: neither
        # may happen while every write would fail, or waiting out the outage sends good events to
        # the dead letters. A database that is down raises here too.
        with self.engine.connect() as conn:
            if refuses_writes(conn):
                raise DatabaseReadOnly("the database is read-only; entries stay in the stream until it takes writes")

    def _drain(self, stats: DrainStats, deadline: float) -> None:
        self._forget_stale_consumers()
        while self._reclaim(stats) and time.monotonic() < deadline:
            pass
        block = None
        while time.monotonic() < deadline:
            reply = self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.batch_size,
                                          block=block)
            entries = reply[0][1] if reply else []
            if entries:
                with self._uncounted_on_outage([sid for sid, _ in entries], {}):
                    self._process(entries, stats)
                self.trim()
            elif block is not None:
                break  # nothing arrived for idle_wait_ms: the stream is drained
            # After a short read the producers are barely ahead: wait a moment for more rather than
            # ending, so a steady flow is drained by one loop instead of one task per beat tick.
            block = None if len(entries) == self.batch_size else self.idle_wait_ms
        else:
            stats.backlog = True

    # ----- reading ---------------------------------------------------------------------------

    def _reclaim(self, stats: DrainStats) -> bool:
        """Claim entries other (dead) consumers left pending; True if a full batch was claimed."""
        pending = self.redis.xpending_range(self.stream, self.group, min="-", max="+", count=self.batch_size,
                                            idle=self.reclaim_idle_ms)
        if not pending:
            return False
        before = {p["message_id"]: p["times_delivered"] for p in pending}
        claimed = self.redis.xclaim(self.stream, self.group, self.consumer, min_idle_time=self.reclaim_idle_ms,
                                    message_ids=list(before))
        stats.reclaimed += len(claimed)
        deliveries = {sid: count + 1 for sid, count in before.items()}
        poison = [(sid, fields) for sid, fields in claimed if deliveries.get(sid, 0) > self.max_deliveries]
        fresh = [(sid, fields) for sid, fields in claimed if deliveries.get(sid, 0) <= self.max_deliveries]
        with self._uncounted_on_outage([sid for sid, _ in claimed], before):
            if poison:
                self._bury([self._letter(sid, self._whole(fields),
                                         f"not acknowledged after {deliveries[sid] - 1} deliveries: its consumers "
                                         "died or hung each time", deliveries[sid]) for sid, fields in poison])
                self.redis.xack(self.stream, self.group, *[sid for sid, _ in poison])
                stats.dead += len(poison)
            if fresh:
                self._process(fresh, stats, deliveries)
        return len(pending) == self.batch_size

    @contextmanager
    def _uncounted_on_outage(self, ids: list, before: dict):
        """On a database outage, give back the deliveries it cost ``ids`` (counts as in ``before``, else 0).

        XREADGROUP and XCLAIM each count a delivery; one that failed because the database was down
        or refused writes says nothing about the entry, and counting it would turn waiting out the
        outage into dead letters. The entries are also made idle enough for any consumer's next
        drain to claim them at once.
        """
        try:
            yield
        except DB_ERRORS as exc:
            if refusal(exc) == OUTAGE:
                log.warning("database outage (%s); %d entries held for a later drain", describe(exc), len(ids))
                self._set_deliveries(ids, before)
            raise

    def _set_deliveries(self, ids: list, before: dict) -> None:
        by_count = defaultdict(list)
        for sid in ids:
            by_count[before.get(sid, 0)].append(sid)
        for count, sids in by_count.items():
            # JUSTID: no delivery counted; RETRYCOUNT: the count restored; IDLE: claimable right away.
            self.redis.xclaim(self.stream, self.group, self.consumer, min_idle_time=0, message_ids=sids,
                              idle=self.reclaim_idle_ms, retrycount=count, justid=True)

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
    def _letter(item_id, raw, reason: str, deliveries: int) -> dict:
        # Everything here comes from the stream, so anything may be in it: the raw payload is kept
        # byte for byte (bytea takes any bytes), the reason made into text the database accepts.
        if not isinstance(raw, bytes):
            raw = str(raw or "").encode("utf-8", "backslashreplace")
        return {"stream_id": _sid(item_id), "raw": raw, "reason": storable_text(reason),
                "delivery_count": deliveries}

    def _process(self, entries: list, stats: DrainStats, deliveries: dict | None = None) -> None:
        with _collection_paused():
            batch, letters = _Batch(), []
            inserted, refused = self._store_streaming(self._parse(entries, deliveries or {}, batch, letters), batch,
                                                      letters)
            parsed = len(batch.rows)
            del batch
        self._bury(letters)
        self.redis.xack(self.stream, self.group, *[sid for sid, _ in entries])
        stats.batches += 1
        stats.entries += len(entries)
        stats.read += parsed + len(letters) - refused
        stats.stored += inserted
        stats.duplicates += parsed - refused - inserted
        stats.dead += len(letters)

    def _parse(self, entries: list, deliveries: dict, batch: _Batch, letters: list[dict]):
        """Validate ``entries`` into ``batch`` (invalid events into ``letters``), yielding each index
        as it is added, so that the first transaction copies rows while later ones are parsed."""
        max_bytes = self.max_event_bytes
        rows, kinds, lines = batch.rows, batch.kinds, batch.lines
        for sid, fields in entries:
            count = deliveries.get(sid, 1)
            if fields and BATCH_FIELD in fields:
                items = enumerate(fields[BATCH_FIELD].split(b"\n"))
            elif fields and FIELD in fields:
                items = ((-1, fields[FIELD]),)
            else:
                _, problem = entry_items(sid, fields)
                letters.append(self._letter(sid, self._whole(fields), problem, count))
                continue
            batch.entries.append((sid, fields, count))
            batch.starts.append(len(rows))
            for line, raw in items:
                try:
                    event = parse_event(raw, max_bytes)
                except InvalidEvent as exc:
                    item_id = _sid(sid) if line < 0 else f"{_sid(sid)}/{line}"
                    letters.append(self._letter(item_id, raw, str(exc), count))
                    continue
                rows.append(event_row(event))
                kinds.append(event.kind)
                lines.append(line)
                yield len(rows) - 1

    def _store_streaming(self, indices, batch: _Batch, letters: list[dict]) -> tuple[int, int]:
        """Store the events ``indices`` yields as they are parsed, in one transaction: rows of the
        first event's kind are copied while the rest of the batch is parsed; other kinds follow.

        When the database refuses rows, the whole batch, parsed to its end, goes to ``_store``'s
        bisection. Returns (rows inserted, rows refused).
        """
        first = next(indices, None)
        if first is None:
            return 0, 0
        kind, kinds, rows = batch.kinds[first], batch.kinds, batch.rows

        def streamed():
            yield rows[first]
            for i in indices:
                if kinds[i] == kind:
                    yield rows[i]

        try:
            with self.engine.begin() as conn:
                inserted = insert_events(conn, kind, streamed())
                for other in set(kinds) - {kind}:
                    inserted += insert_events(conn, other, [row for row, k in zip(rows, kinds) if k == other])
            return inserted, 0
        except DB_ERRORS as exc:
            if refusal(exc) != ROWS:
                raise
            for _ in indices:  # parse whatever the refusal left unread
                pass
            parsed = _Parsed(batch, range(len(rows)))
            if len(parsed) == 1:
                return self._store(parsed, letters)
            log.info("database refused rows among %d (%s); isolating them", len(parsed), error_code(exc))
            first_half, second_half = parsed.halves()
            a, b = self._store(first_half, letters), self._store(second_half, letters)
            return a[0] + b[0], a[1] + b[1]

    def _store(self, parsed: _Parsed, letters: list[dict]) -> tuple[int, int]:
        """Store ``parsed`` in one transaction; returns (rows inserted, rows refused).

        When the database refuses rows, each half is stored on its own, down to the refused rows,
        which join ``letters``: k refused rows among n cost about 2k·log2(n/k) transactions, not n.
        Any other failure is raised.
        """
        if not parsed:
            return 0, 0
        try:
            return self._insert(parsed), 0
        except DB_ERRORS as exc:
            if refusal(exc) != ROWS:
                raise
            if len(parsed) == 1:
                item_id, raw, deliveries = parsed.batch.origin(parsed.indices[0])
                letters.append(self._letter(item_id, raw, f"database refused: {describe(exc)}", deliveries))
                return 0, 1
            log.info("database refused rows among %d (%s); isolating them", len(parsed), error_code(exc))
        first_half, second_half = parsed.halves()
        first, second = self._store(first_half, letters), self._store(second_half, letters)
        return first[0] + second[0], first[1] + second[1]

    def _insert(self, parsed: _Parsed) -> int:
        rows, kinds = parsed.batch.rows, parsed.batch.kinds
        by_kind: dict[str, list[tuple]] = {}
        for i in parsed.indices:
            by_kind.setdefault(kinds[i], []).append(rows[i])
        inserted = 0
        with self.engine.begin() as conn:
            for kind, kind_rows in by_kind.items():
                inserted += insert_events(conn, kind, kind_rows)
        return inserted

    def _bury(self, letters: list[dict]) -> None:
        """Store dead letters; one the database refuses even so is stored as a minimal letter."""
        if not letters:
            return
        try:
            self._insert_letters(letters)
        except DB_ERRORS as exc:
            if refusal(exc) != ROWS:
                raise
            for letter in letters:
                self._bury_one(letter)

    def _bury_one(self, letter: dict) -> None:
        try:
            self._insert_letters([letter])
        except DB_ERRORS as exc:
            if refusal(exc) != ROWS:
                raise
            # Only the reason is ours to give up: keep the stream id and the raw bytes, and say why
            # with nothing taken from the refused letter (which may be what was refused).
            reason = f"the database refused this dead letter's reason ({error_code(exc)}); reason dropped"
            log.warning("dead letter %s: %s", letter["stream_id"], reason)
            self._insert_letters([{**letter, "reason": reason}])

    def _insert_letters(self, letters: list[dict]) -> None:
        with self.engine.begin() as conn:
            insert_dead_letters(conn, letters)

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
