"""Caches for synthesized audio and translations: a local file layer and a shared Redis layer."""

from models.cache.base import ByteCache
from models.cache.file import FileCache
from models.cache.keys import cache_key, normalize_text
from models.cache.layered import LayeredCache, build_cache
from models.cache.redis_cache import RedisCache
from models.cache.settings import CacheSettings
from models.cache.values import decode_pcm, decode_text, encode_pcm, encode_text

__all__ = [
    "ByteCache",
    "CacheSettings",
    "FileCache",
    "LayeredCache",
    "RedisCache",
    "build_cache",
    "cache_key",
    "decode_pcm",
    "decode_text",
    "encode_pcm",
    "encode_text",
    "normalize_text",
]
