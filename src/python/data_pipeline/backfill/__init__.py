"""Backfill: bronze -> silver over a date range for many agencies, one recorded child run each.

Flow: `plan` lists the bronze in range and each agency's fold ledger, and says what each agency
has to do -> `run` folds the agencies (several at once, sharing one worker pool), each as a child
run of the backfill (runs.child_runs) doing bronze_to_silver.run -> `report` prints the plan and
the per-agency summary with a total; `command` is that whole flow, as the backfill job calls it
once its stores are open.
`configuration`: backfill's settings and flags.
"""
