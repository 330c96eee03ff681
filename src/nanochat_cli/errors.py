"""The one error type the CLI turns into a line on stderr and an exit code.

Library code raises `NanochatError` (or a subclass) with a message and, where there is one, the
command that fixes the problem; only `cli/` prints it. Exit codes (docs/reference/exit-codes.md):
0 ok, 1 failure while running, 2 bad input/usage, 3 preflight failed.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PREFLIGHT = 3
# Training stopped by SIGTERM/SIGUSR2 after saving a checkpoint (sysexits' EX_TEMPFAIL: retry later);
# non-zero so `train base && train mid` does not go on with a half-trained model.
EXIT_PREEMPTED = 75


class NanochatError(Exception):
    """A problem the user can act on: `message` says what, `fix` says how."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, fix: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix
        if exit_code is not None:
            self.exit_code = exit_code

    def one_line(self) -> str:
        """The single line printed on stderr (newlines inside values are flattened)."""
        text = self.message if not self.fix else f"{self.message} — fix: {self.fix}"
        return " ".join(text.split())


class UsageError(NanochatError):
    """Bad input: unknown profile, malformed TOML, absurd values, missing checkpoint asked for."""

    exit_code = EXIT_USAGE


class PreflightError(NanochatError):
    """A prerequisite of a phase is missing; raised before any compute is spent."""

    exit_code = EXIT_PREFLIGHT

