"""Background work of the exports app (Django Tasks API).

``run_export`` writes one ``ExportJob``'s file. With ``TASKS_BACKEND=database`` a
``manage.py db_worker`` runs it and the page shows its progress; the immediate backend (tests,
``make run``) runs it before the request returns. Running it twice for one job writes once.
"""

from __future__ import annotations

from typing import Any

from django_tasks import task

from exports import services


@task()
def run_export(job_id: int) -> dict[str, Any]:
    return services.export_job_run(job_id=job_id)
