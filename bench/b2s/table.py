"""The benchmark's table: one line per run, throughput as a ratio to the fastest peer."""

from __future__ import annotations

from collections.abc import Sequence

from b2s.runs import Outcome

HEADER = (
    "implementation", "rows", "store", "wall s", "rows/s", "MB/s", "CPU s", "peak RSS MB",
    "invariant", "same output", "x fastest peer", "load1", "semantics", "notes",
)  # fmt: skip


def rows_of(outcomes: Sequence[Outcome]) -> list[tuple[str, ...]]:
    """Cells per run. "same output" compares silver and dead-letter digests with the first job
    run of the same size (or the first run, without one); the ratio is rows/s over the fastest
    peer's rows/s at the same size."""
    lines: list[tuple[str, ...]] = []
    for outcome in outcomes:
        same_size = [o for o in outcomes if o.dataset.rows == outcome.dataset.rows]
        reference = next((o for o in same_size if o.implementation.startswith("job")), same_size[0])
        peers = [o for o in same_size if not o.implementation.startswith("job")]
        fastest = min((o.usage.wall_s for o in peers), default=None)
        wall = outcome.usage.wall_s
        problems = outcome.problems
        lines.append(
            (
                outcome.implementation,
                f"{outcome.dataset.rows:,}",
                outcome.store,
                f"{wall:.2f}",
                f"{outcome.dataset.rows / wall:,.0f}",
                f"{outcome.dataset.input_bytes / 1e6 / wall:.1f}",
                f"{outcome.usage.cpu_s:.2f}",
                f"{outcome.usage.peak_rss_mb:.0f}",
                "ok" if not problems else "FAIL: " + "; ".join(problems),
                "ref" if outcome is reference else _same(outcome, reference),
                "-" if fastest is None else f"{fastest / wall:.2f}",
                f"{outcome.load:.1f}",
                outcome.semantics,
                outcome.note,
            )
        )
    return lines


def _same(outcome: Outcome, reference: Outcome) -> str:
    if outcome.readback.digest == reference.readback.digest:
        return "yes"
    silver = outcome.readback.silver_digest == reference.readback.silver_digest
    dead = outcome.readback.dead_digest == reference.readback.dead_digest
    return "no (" + ", ".join(n for n, ok in (("silver", silver), ("dead", dead)) if not ok) + ")"


def as_text(lines: Sequence[tuple[str, ...]]) -> str:
    """Aligned columns; numbers right-aligned."""
    table = [HEADER, *lines]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    numeric = {1, 3, 4, 5, 6, 7, 10, 11}
    return "\n".join(
        "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in table
    )


def as_markdown(lines: Sequence[tuple[str, ...]]) -> str:
    numeric = {1, 3, 4, 5, 6, 7, 10, 11}
    rule = ["---:" if i in numeric else "---" for i in range(len(HEADER))]
    table = [HEADER, tuple(rule), *lines]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table)
