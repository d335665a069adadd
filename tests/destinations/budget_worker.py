"""One process drawing on a Marketo instance's shared API budget, for
test_budget_processes.py: `python -m tests.destinations.budget_worker --base-url ...`.

It logs in first (identity calls are not budgeted), waits for the agreed start time so the
processes begin together, makes --calls data calls from --threads threads, and prints what
happened as JSON on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--calls-per-20s", type=int, required=True)
    parser.add_argument("--max-concurrency", type=int, required=True)
    parser.add_argument("--start-at", type=float, required=True, help="seconds since the epoch")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cohortsync_site.settings")
    import django

    django.setup()
    from destinations.budget import budget_store_name
    from destinations.marketo.client import MarketoClient

    client = MarketoClient(
        base_url=args.base_url, client_id="sandbox-client-id", client_secret="sandbox-client-secret",
        calls_per_20s=args.calls_per_20s, max_concurrency=args.max_concurrency,
    )
    client.access_token()
    left = [args.calls]
    errors: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                client.describe_leads()
            except Exception as exc:  # reported, not raised: the test reads them
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")

    time.sleep(max(0.0, args.start_at - time.time()))
    threads = [threading.Thread(target=work) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"store": budget_store_name(), "api_calls": client.api_calls, "errors": errors}))


if __name__ == "__main__":
    main()
