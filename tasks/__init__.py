"""Thin Celery tasks: ids and small JSON in, policy on the decorator, work in ``shared``."""
