"""Settings of the webhook benchmark's server: market40's own, plus a URLconf that adds
the baseline view (``_webhook_urls``). Only ``bench_webhooks.py`` uses this; the leading
underscore keeps ``make bench``, which runs every ``bench_*.py``, from running it."""

from market40.settings import *  # noqa: F403

ROOT_URLCONF = "_webhook_urls"
