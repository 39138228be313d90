"""User-facing errors. The CLI prints these as one line (no traceback) and exits non-zero."""


class AvslError(Exception):
    """An input problem the user can fix; the message names the file and the fix."""

    exit_code = 1
