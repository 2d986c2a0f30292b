"""Leases bound concurrent drainers and expire on their own."""

import time

import fakeredis

from shared.leases import acquire


def test_at_most_n_holders_and_release_frees_a_slot():
    r = fakeredis.FakeRedis()
    a = acquire(r, "l:", 2, 10_000)
    b = acquire(r, "l:", 2, 10_000)
    assert a and b and acquire(r, "l:", 2, 10_000) is None
    a.release()
    assert acquire(r, "l:", 2, 10_000) is not None


def test_an_expired_lease_is_not_released_by_its_old_holder():
    r = fakeredis.FakeRedis()
    old = acquire(r, "l:", 1, 50)
    time.sleep(0.1)
    new = acquire(r, "l:", 1, 10_000)
    assert new is not None
    old.release()
    assert acquire(r, "l:", 1, 10_000) is None
    assert not old.extend() and new.extend()
