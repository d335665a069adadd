"""The sync engine: plan a run against the synced state, push it in batches, record it.

Entry point: runner.run_execute(run_id=...), called through syncs.services.sync_run_execute.
"""
