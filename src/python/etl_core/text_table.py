"""Tables as text: aligned columns for a terminal or a log, or Markdown for a report.

The one table printer of the project (`data-pipeline runs`, the backfill's plan and summary, the
benchmarks), in place of three hand-written copies. rich.table was tried and not used: it fits a
table to the console's width (80 columns when stdout is not a TTY), wrapping or cropping cells,
whereas these tables are wider than that (the run list has 15 columns), are read by scripts and
tests one line per row with `split()`, and go unchanged into files; undoing the fitting (a huge
console width, then stripping the padding) would take more code than this module, and an import of
rich.table (~40 ms) in `data-pipeline runs`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = ["aligned", "byte_size", "markdown"]


def aligned(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[str] = ()
) -> str:
    """Header and rows, columns two spaces apart and as wide as their widest cell; the columns
    named in `right` (numbers) right-aligned, the others left-aligned; no trailing spaces."""
    widths = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if name in right else cell.ljust(width)
            for name, cell, width in zip(header, cells, widths, strict=True)
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


def markdown(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[str] = ()
) -> str:
    """A GitHub-flavoured Markdown table; `|` in a cell escaped, `right` columns right-aligned."""
    rule = ["---:" if name in right else "---" for name in header]
    table = [tuple(header), tuple(rule), *rows]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table)


def byte_size(value: int) -> str:
    """A byte count as a cell: `512 B`, `1.5 kB`, `2.0 MB`, up to GB (decimal units)."""
    size = float(value)
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
