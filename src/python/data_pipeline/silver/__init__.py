"""The bronze -> silver transform of WORKLOAD.md, as pure functions (no I/O, no driver).

Flow for one bronze file: `file_transform.transform_batch` splits the body into lines ->
`columnar` decides, with Arrow kernels, the rows whose every field has a shape it handles exactly,
and builds their silver columns -> every other line goes through `validate` (parse, check in spec
order, the first failing rule is the dead letter's `reasons` entry) with `normalise` and
`timeparse` -> a FileBatch: valid rows as an Arrow table (`arrow`, `schema`) and dead letters.
`dedupe` keeps, per record_id, the row with the greatest updated_at across a fold's files.
`agencies` is the agencies reference table the enrichment joins.
"""
