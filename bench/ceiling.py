"""What a client doing nothing but HTTP reaches against the emulators (the ceiling).

The bounds in bench.paths are what the configured limits allow on paper (e.g. 8 requests
of 0.05 s at once). The emulator adds its own processing and Python's thread switching on
top of the configured latency, so no client reaches 100 %. This probe measures how close
a minimal client gets: prebuilt request bodies, one keep-alive session per thread, no
database, no outcome handling. `manage.py bench --ceiling` prints it next to the bound.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

SANDBOX_CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


def _marketo(base: str, *, requests_total: int, batch: int, concurrency: int, field: str) -> tuple[int, float]:
    token = requests.post(f"{base}/marketo/identity/oauth/token",
                          data={"grant_type": "client_credentials", **SANDBOX_CLIENT}, timeout=30).json()
    headers = {"Authorization": f"Bearer {token['access_token']}", "Content-Type": "application/json"}
    bodies = [
        json.dumps({"action": "createOrUpdate", "lookupField": "email",
                    "input": [{"email": f"ceiling{n}-{i}@example.com", field: True} for i in range(batch)]})
        for n in range(requests_total)
    ]
    return _hammer(f"{base}/marketo/rest/v1/leads.json", bodies, headers, concurrency, batch)


def _sfmc(base: str, *, requests_total: int, batch: int, concurrency: int, field: str, key: str) -> tuple[int, float]:
    token = requests.post(f"{base}/sfmc/auth/v2/token",
                          json={"grant_type": "client_credentials", **SANDBOX_CLIENT}, timeout=30).json()
    headers = {"Authorization": f"Bearer {token['access_token']}", "Content-Type": "application/json"}
    bodies = [
        json.dumps([{"keys": {"SubscriberKey": f"ceiling{n}-{i}"}, "values": {field: True}} for i in range(batch)])
        for n in range(requests_total)
    ]
    return _hammer(f"{base}/sfmc/rest/hub/v1/dataevents/key:{key}/rowset", bodies, headers, concurrency, batch)


def _hammer(url: str, bodies: list[str], headers: dict[str, str], concurrency: int, batch: int) -> tuple[int, float]:
    local = threading.local()
    errors: list[int] = []

    def send(body: str) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.post(url, data=body, headers=headers, timeout=60)
        if response.status_code != 200:
            errors.append(response.status_code)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(send, bodies))
    seconds = time.monotonic() - started
    if errors:
        raise RuntimeError(f"the emulator answered {errors[0]} to {len(errors)} ceiling requests")
    return len(bodies) * batch, seconds


def ceiling_measure(*, path: str, base_url: str, config: dict[str, Any], requests_total: int) -> float:
    """Users per second a minimal client reaches on `path` (marketo_sync or sfmc_rowset)."""
    if path == "marketo_sync":
        users, seconds = _marketo(base_url, requests_total=requests_total, batch=int(config["max_batch_size"]),
                                  concurrency=int(config["max_concurrency"]), field="cohortBench")
    elif path == "sfmc_rowset":
        users, seconds = _sfmc(base_url, requests_total=requests_total, batch=50,
                               concurrency=int(config["max_concurrent_requests"]), field="In_Demo_Cohort",
                               key="CohortSync_Demo")
    else:
        raise ValueError(f"no ceiling probe for {path}")
    return users / seconds
