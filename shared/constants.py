"""Redis names in one place. Renaming any of these strands data already written under the old name."""

#: The stream producers append to (must equal ``promptloop_client.wire.STREAM``).
STREAM = "promptloop:events"
#: The field of an entry holding one event's JSON (``promptloop_client.wire.FIELD``).
FIELD = b"e"
#: The field of an entry holding a batch of events, one JSON per line (``promptloop_client.wire.BATCH_FIELD``).
BATCH_FIELD = b"b"
#: Event schema versions ingest understands (``promptloop_client.wire.SCHEMA_VERSION``).
SCHEMA_VERSIONS = (1,)
#: The consumer group all ingest workers share: each entry goes to one of them.
GROUP = "promptloop-ingest"
#: Leases that bound how many drain loops run at once, ``{prefix}{slot}``; they expire on their own
#: when a worker dies, so a killed drainer never blocks the others for longer than the lease.
DRAIN_SLOT_PREFIX = "promptloop:lease:drain:"
#: Rollout state producers may read (routing a call to a variant); the shipped Redis ACL
#: (``deploy/redis/users.acl.template``) grants producers read-only GET/HGETALL/MGET on ``{prefix}*``.
ROLLOUT_PREFIX = "promptloop:rollout:"
