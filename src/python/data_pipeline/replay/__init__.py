"""Replay of dead letters: rows that now pass (fixed code, or a correction) land in silver once.

Flow: `select` reads the agency's current dead-letter rows from the dead-letter table (and the
corrections stored for them) -> `run` folds them through bronze_to_silver as a child run ->
`track` follows that pass and decides, row by row, where each replayed line went (silver, still
dead, duplicate), so the run history accounts for every row.
`configuration`: replay_dead_letters's settings and flags.
"""
