"""The nightly schedule, one place for ``serve.py``; ``prefect.yaml`` (YAML cannot import) repeats
it and ``tests/unit/test_defaults.py`` fails when the two disagree."""

from __future__ import annotations

import os

RETRAIN_CRON = "0 2 * * *"  # 02:00 every night
DEFAULT_TIMEZONE = "Africa/Addis_Ababa"
RETRAIN_DEPLOYMENT = "nightly-retrain"
SCORE_DEPLOYMENT = "nightly-score"


def schedule_timezone() -> str:
    """``BATI_SCHEDULE_TZ`` (an IANA name) or Addis Ababa."""
    return os.environ.get("BATI_SCHEDULE_TZ", DEFAULT_TIMEZONE)


def score_after_retrain_trigger() -> dict:
    """An event trigger: run the score deployment whenever a retrain flow run completes."""
    return {
        "type": "event",
        "name": "score-after-retrain",
        "description": "Score every customer with the champion after each completed retrain",
        "expect": ["prefect.flow-run.Completed"],
        "match_related": {"prefect.resource.role": "flow", "prefect.resource.name": "retrain"},
        "posture": "Reactive",
        "threshold": 1,
    }
