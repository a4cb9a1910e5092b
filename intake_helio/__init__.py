"""intake-helio: HelioCloud's CloudCatalog as intake catalogs and lazy xarray frames."""

from .errors import (
    BucketUnavailableError,
    CatalogFormatError,
    CatalogNotFoundError,
    DatasetNotFoundError,
    FrameReadError,
    HelioWarning,
    IndexParseError,
    TimeRangeError,
)

__version__ = "0.1.0"

__all__ = [
    "BucketUnavailableError",
    "CatalogFormatError",
    "CatalogNotFoundError",
    "DatasetNotFoundError",
    "FrameReadError",
    "HelioWarning",
    "IndexParseError",
    "TimeRangeError",
    "__version__",
]
