"""The ``promptloop`` command line."""
