"""Table maintenance of the silver and dead-letter Delta tables (the `maintain` job).

Flow (`run`): pick the agencies with partitions to compact -> compact each under its
bronze_to_silver lease (runs.leased), so it never races a fold -> vacuum and checkpoint ->
`report` prints, per table, what compaction, vacuum and checkpoint did.
`configuration`: maintain's settings and flags.
"""
