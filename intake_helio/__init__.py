"""intake-helio: HelioCloud's CloudCatalog as intake catalogs and lazy xarray frames."""

from .assembly import open_frames
from .cluster import cluster
from .demo_data import write_demo_dataset
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
from .irradiance import irradiance
from .local_s3 import LocalS3
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
    "LocalS3",
    "Registry",
    "SearchResults",
    "TimeRangeError",
    "__version__",
    "cluster",
    "irradiance",
    "open_bucket",
    "open_frames",
    "open_registry",
    "parse_time",
    "write_demo_dataset",
]
