"""Background work of the payments app (Django Tasks API)."""

from django_tasks import task


@task()
def process_event(event_id: int) -> int:
    # Nothing enqueues it any more (process_events does its work); kept so that tasks
    # queued by an earlier version still run. Errors are recorded on the event by
    # event_process; the task result keeps them too.
    from payments.services import event_process

    return event_process(event_id)


@task()
def process_events(event_ids: list[int]) -> int:
    """The new deliveries of one commit (payments/groupcommit.py), in order; errors are
    recorded on each event by event_process."""
    from payments.services import events_process

    return events_process(event_ids)
