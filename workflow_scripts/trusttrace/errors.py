"""The one exception type TrustTrace raises for bad input.

Every check that can fail on user input raises ``TrustTraceError`` with a one-line message that names the file
or config key at fault and what to do about it, so that a failed job's log says why in its last line.
"""


class TrustTraceError(ValueError):
    """Bad input or state, explained in one line (file or key, what is wrong, how to fix it)."""


class DegenerateCellError(TrustTraceError):
    """A cell whose representation carries no information to analyse (e.g. every row has the same vector: the
    embedding of a shared final token such as '.'). Recorded in the cell's metrics file instead of failing the
    run, because it is a finding about that layer, not a bad input."""
