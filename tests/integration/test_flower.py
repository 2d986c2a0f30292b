"""Flower watches the workers, behind basic auth."""

import base64
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from shared.local import free_port

from .conftest import ROOT

pytestmark = pytest.mark.integration


def get(url: str, auth: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


AUTH = "ops:3f9c2a7b1d8e4f60"


def test_promptloop_flower_requires_auth_and_lists_the_worker(stack):
    stack.start_worker("watched")
    port = free_port()
    flower = subprocess.Popen([sys.executable, "-m", "cli.main", "flower", f"--port={port}",
                               "--address=127.0.0.1"], cwd=ROOT, env=stack.env(FLOWER_BASIC_AUTH=AUTH),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stack.procs.append(flower)
    base = f"http://127.0.0.1:{port}"

    def workers_listed():
        try:
            status, body = get(f"{base}/api/workers?refresh=1", AUTH)
        except OSError:
            return False
        return status == 200 and "watched@" in body

    stack.wait_for(workers_listed, 60, "Flower to list the worker")
    assert get(f"{base}/", None)[0] == 401
    assert get(f"{base}/", "ops:wrong")[0] == 401
    assert get(f"{base}/", AUTH)[0] == 200


@pytest.mark.parametrize("auth", [None, "ops:short", "ops:changeme-please", "nocolon"])
def test_promptloop_flower_refuses_to_start_without_real_credentials(stack, auth):
    env = stack.env()
    env.pop("FLOWER_BASIC_AUTH", None)
    if auth:
        env["FLOWER_BASIC_AUTH"] = auth
    done = subprocess.run([sys.executable, "-m", "cli.main", "flower", f"--port={free_port()}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Flower not started" in done.stdout + done.stderr
