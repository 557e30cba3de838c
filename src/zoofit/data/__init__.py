"""Data: every source becomes an :class:`ImageSet`; the protocol cuts it into :class:`Splits`."""

from zoofit.data.dataset import ImageSet, SourceData, Splits
from zoofit.data.protocol import DataConfig, load_data, make_splits
from zoofit.data.sources import image_files, load_source

__all__ = ["DataConfig", "ImageSet", "SourceData", "Splits", "image_files", "load_data", "load_source", "make_splits"]
