"""Enqueueing background work (Django Tasks API) so that it sees committed data.

With the database backend (production: ``django-tasks-db`` workers on any host) the task
row is written in the caller's own transaction: workers see the task exactly when they
can see the data it works on, and a crash between the commit and the enqueue cannot
leave committed work without its task. Other backends (the immediate one of tests and
``make run``) must be called once the caller's transaction has committed.
"""

from __future__ import annotations

from typing import Any


def enqueues_in_transaction(task: Any) -> bool:
    """Whether ``task.enqueue`` inside the caller's transaction is the right moment."""
    from django_tasks_db import DatabaseBackend

    return isinstance(task.get_backend(), DatabaseBackend)
