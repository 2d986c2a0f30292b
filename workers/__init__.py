"""The Celery application: queues, routing, serialization and per-process setup."""
