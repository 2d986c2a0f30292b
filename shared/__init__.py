"""promptloop's domain core: settings, storage, event schemas and the logic the workers run.

Nothing in this package imports Celery; ``tasks/`` wraps these functions.
"""
