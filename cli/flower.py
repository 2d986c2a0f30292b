"""``promptloop flower``: Flower, only behind basic auth (the same rules as ``deploy/flower.sh``)."""

from __future__ import annotations

import os

PLACEHOLDERS = ("changeme", "change", "placeholder", "example", "password", "secret")


def auth_problem(auth: str | None) -> str | None:
    """Why ``FLOWER_BASIC_AUTH`` cannot protect Flower, or None when it can."""
    if not auth:
        return ("FLOWER_BASIC_AUTH is not set: set it to user:password in the environment "
                "(e.g. ops:$(openssl rand -hex 16))")
    for pair in auth.split(","):
        if ":" not in pair:
            return "FLOWER_BASIC_AUTH must be user:password (several: user:password,user2:password2)"
        user, password = pair.split(":", 1)
        if not user:
            return "FLOWER_BASIC_AUTH has a password without a user name"
        lower = password.lower()
        if any(p in lower for p in PLACEHOLDERS) or lower.startswith(("xxx", "todo")) or (
                "change" in lower and "me" in lower):
            return f"FLOWER_BASIC_AUTH: the password of '{user}' looks like a placeholder"
        if len(password) < 12:
            return f"FLOWER_BASIC_AUTH: the password of '{user}' must have at least 12 characters"
    return None


def run_flower(port: int, address: str) -> None:
    """Start Flower on the deployment's broker; credentials stay in the environment (not in ``ps``)."""
    from workers.app import app as celery_app

    assert auth_problem(os.environ.get("FLOWER_BASIC_AUTH")) is None
    celery_app.start(["flower", f"--port={port}", f"--address={address}"])
