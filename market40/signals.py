"""Signals through which later apps react to the market domain without market40 importing
them (data flows market40 → payments → invoicing).

Both are sent after the surrounding transaction commits (``transaction.on_commit``), so a
receiver never sees, and never waits inside, an uncommitted change.
"""

from django.dispatch import Signal

# A billing run created demands. kwargs: run (BillingRun). Payments applies holders'
# credits to the new demands here.
demands_billed = Signal()

# Demands became fully paid (status paid or overpaid). kwargs: demand_ids (list of int),
# one signal per committed batch. Invoicing enqueues the issuance tasks here.
demand_fully_paid = Signal()

# seed_demo created a demo market. kwargs: market. Receivers return lines to print
# (payments creates one bank connection per provider and returns their URLs/secrets).
demo_seeded = Signal()
