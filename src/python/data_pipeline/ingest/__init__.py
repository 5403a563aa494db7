"""API and database ingestion: pull one agency's records from a RecordSource into bronze.

Flow: `pull` resumes from the agency+source pull state (last checkpoint, or the high-water mark
in since mode) -> reads pages from the source -> `records` validates each record with the
transform's own line validator and turns it into a bronze line -> parts are written once
(store.put_once) and the checkpoint is saved after each part, so a crash re-fetches at most one
page.
`configuration`: ingest_api's settings and flags.
"""
