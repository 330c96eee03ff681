"""Tiny models run faster on one thread, and on a shared machine two threads per test oversubscribe it."""

from tests.threads import one_thread  # noqa: F401  (autouse for this folder)
