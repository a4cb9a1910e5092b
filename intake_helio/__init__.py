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
from .file_index import BadRow
from .registry import (
    DEFAULT_REGISTRY_URL,
    Bucket,
    Dataset,
    Endpoint,
    Registry,
    SearchResults,
    open_bucket,
    open_registry,
)
from .times import parse_time

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_REGISTRY_URL",
    "BadRow",
    "Bucket",
    "BucketUnavailableError",
    "CatalogFormatError",
    "CatalogNotFoundError",
    "Dataset",
    "DatasetNotFoundError",
    "Endpoint",
    "FrameReadError",
    "HelioWarning",
    "IndexParseError",
    "Registry",
    "SearchResults",
    "TimeRangeError",
    "__version__",
    "open_bucket",
    "open_registry",
    "parse_time",
]
