"""Runs inside a run: a child run (own run row, run_id, lease, heartbeats, ledger rows) for each
agency of a backfill or replay, and a coroutine run while holding a named lease."""
