"""The one exception type that reaches the user as a single line instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit code `code`.

    Exit codes: 2 bad input or usage (bad file, bad filter), 3 environment (privileges, bcc,
    headers), 4 output (unwritable directory, disk full).
    """

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code
