"""Errors a user can cause: one line of cause, one line of fix, and an exit code."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_CHANGES_PENDING = 4
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Something the user can fix; shown without a traceback."""

    def __init__(self, cause: str, fix: str = "", code: int = EXIT_USAGE):
        super().__init__(cause)
        self.cause = cause
        self.fix = fix
        self.code = code

    def __str__(self) -> str:
        return self.cause if not self.fix else f"{self.cause} (fix: {self.fix})"
