"""Background work of the payments app (Django Tasks API)."""

from django_tasks import task


@task()
def process_event(event_id: int) -> int:
    # Errors are recorded on the event by event_process; the task result keeps them too.
    from payments.services import event_process

    return event_process(event_id)


@task()
def process_events(event_ids: list[int]) -> int:
    """The deliveries one group commit stored (payments/groupcommit.py), in order."""
    from payments.services import events_process

    return events_process(event_ids)
