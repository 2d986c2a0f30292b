"""The CLI as a person runs it, on a fresh data directory with CoNLL04 imported."""

import pytest

from tests.unit.cli.runner import cli_runner


@pytest.fixture
def cli(tmp_path):
    """``(run, data_dir)``: ``promptloop`` subprocesses on an initialized embedded database, Redis down."""
    run = cli_runner(tmp_path, {"m": "scripted/follow"}, COLUMNS="250")
    assert run("init")[0] == 0
    assert run("datasets", "import", "--name", "conll04")[0] == 0
    return run, tmp_path
