"""Re-exports of the shared helpers (``terracarbon.errors``, ``terracarbon.utils``) used by the footprint package."""

from __future__ import annotations

from terracarbon.errors import ConfigError, InputError, TerracarbonError
from terracarbon.utils import atomic_path, atomic_write_json, atomic_write_text

write_text_atomic = atomic_write_text
write_json_atomic = atomic_write_json

__all__ = [
    "ConfigError",
    "InputError",
    "TerracarbonError",
    "atomic_path",
    "write_json_atomic",
    "write_text_atomic",
]
