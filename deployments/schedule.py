"""The nightly schedule and the deployment names, one place for ``serve.py``; ``prefect.yaml``
(YAML cannot import) repeats them and ``tests/unit/test_defaults.py`` fails when they disagree.

The served deployments (``python -m deployments.serve``) and the work-pool ones
(``prefect deploy --prefect-file deployments/prefect.yaml``) have distinct names, so registering
one never takes over the other: ``nightly/nightly`` vs ``nightly/nightly-pool``, and so on.
"""

from __future__ import annotations

from schemas.settings import setting

RETRAIN_CRON = "0 2 * * *"  # 02:00 every night: the nightly flow (ingest, retrain, score)
NIGHTLY_CRON = RETRAIN_CRON
DEFAULT_TIMEZONE = "Africa/Addis_Ababa"
NIGHTLY_DEPLOYMENT = "nightly"  # served
RETRAIN_DEPLOYMENT = "nightly-retrain"  # served, by hand (the night retrains through nightly)
SCORE_DEPLOYMENT = "nightly-score"  # served, after each completed nightly-retrain run
POOL_SUFFIX = "-pool"
NIGHTLY_POOL_DEPLOYMENT = NIGHTLY_DEPLOYMENT + POOL_SUFFIX
RETRAIN_POOL_DEPLOYMENT = RETRAIN_DEPLOYMENT + POOL_SUFFIX
SCORE_POOL_DEPLOYMENT = SCORE_DEPLOYMENT + POOL_SUFFIX
#: Retrain runs of the nightly flow are named so (it scores them itself; see flows/nightly.py).
NIGHTLY_RETRAIN_RUNS = "nightly-retrain-*"


def schedule_timezone() -> str:
    """``BATI_SCHEDULE_TZ`` (an IANA name) or Addis Ababa."""
    return setting("schedule_tz")


def score_after_retrain_trigger(retrain_deployment: str = RETRAIN_DEPLOYMENT) -> dict:
    """An event trigger: run the score deployment once after each completed run of
    ``retrain_deployment`` (its own pool's or the served one, never both). The nightly flow
    scores its own retrain subflow, so its runs (``nightly-retrain-*``) are left out."""
    return {
        "type": "event",
        "name": f"score-after-{retrain_deployment}",
        "description": f"Score every customer with the champion after each completed "
        f"{retrain_deployment} run",
        "expect": ["prefect.flow-run.Completed"],
        "match": {"prefect.resource.name": f"!{NIGHTLY_RETRAIN_RUNS}"},
        "match_related": [
            {"prefect.resource.role": "flow", "prefect.resource.name": "retrain"},
            {"prefect.resource.role": "deployment", "prefect.resource.name": retrain_deployment},
        ],
        "posture": "Reactive",
        "threshold": 1,
    }
