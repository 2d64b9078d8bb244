"""Defaults every layer shares, in one place: the model name, the label windows, the promotion
margins and the var/ folder.

This module imports nothing of the project, so the pipeline (``credit``, ``tasks``, ``flows``),
the registry and the API may all import it without breaking the layer rules.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: The registry model name the flows register and the API serves (``BATI_MODEL_NAME``).
DEFAULT_MODEL_NAME = "bati-credit"

#: Label windows: features from the observation window, the proxy label from the performance one.
OBSERVATION_DAYS = 60
PERFORMANCE_DAYS = 30

#: Champion/challenger margins (``registry.PromotionPolicy``, ``flows.retrain`` options).
MIN_AUC_GAIN = 0.005
MAX_KS_LOSS = 0.02
MAX_BRIER_INCREASE = 0.005

VAR_DIR_ENV = "BATI_VAR_DIR"
DB_URL_ENV = "BATI_DB_URL"


def var_path() -> Path:
    """Generated files' folder: ``$BATI_VAR_DIR``, else ``<project>/var`` (not created here)."""
    from schemas.settings import setting  # settings import this module

    return setting("var_dir") or PROJECT_ROOT / "var"
