"""get_s3_files: copy an agency's documents from a source store into the bronze layout.

Flow: `plan` maps each source document to its destination key and says whether the destination
copy is current -> `documents` copies the others with bounded concurrency and memory, recording
per-object failures -> `run` makes it one recorded run: the copy manifest, ledger rows, outcome.
Nothing here is S3-specific: both ends are ObjectStores.
`configuration`: get_s3_files's settings and flags.
"""
