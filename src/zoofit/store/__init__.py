"""The store: the only place that writes to disk (atomic writes, the content-addressed cache)."""

from zoofit.store.atomic import atomic_path, write_csv, write_json, write_tensors, write_text
from zoofit.store.cache import Cache, cache_root, content_key
from zoofit.store.run import RunStore

__all__ = [
    "Cache",
    "RunStore",
    "atomic_path",
    "cache_root",
    "content_key",
    "write_csv",
    "write_json",
    "write_tensors",
    "write_text",
]
