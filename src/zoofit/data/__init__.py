"""Data: every source becomes an :class:`ImageSet`; the protocol cuts it into :class:`Splits`."""

from zoofit.data.dataset import ImageSet, SourceData, Splits
from zoofit.data.domain import Domain, load_domain, load_domains, parse_domains
from zoofit.data.protocol import DataConfig, load_data, make_splits
from zoofit.data.sources import image_files, load_source

__all__ = [
    "DataConfig",
    "Domain",
    "ImageSet",
    "SourceData",
    "Splits",
    "image_files",
    "load_data",
    "load_domain",
    "load_domains",
    "load_source",
    "make_splits",
    "parse_domains",
]
