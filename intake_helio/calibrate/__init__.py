"""AIA calibration with aiapy: degradation factors for the engine, level-1.5 Maps.

aiapy (the ``aia`` extra) is imported when a calibration is first asked for.
"""

from .degradation import Degradation, degradation_model
from .tables import (
    CalibrationError,
    CorrectionTable,
    CorrectionTableNotFoundError,
    MissingAiapyError,
    correction_table,
)

__all__ = [
    "CalibrationError",
    "CorrectionTable",
    "CorrectionTableNotFoundError",
    "Degradation",
    "MissingAiapyError",
    "correction_table",
    "degradation_model",
]
