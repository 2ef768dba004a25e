"""Rate limits and quotas: token buckets and concurrency slots, in memory or shared through Redis.

`RateLimitInspector` (limiter.py) is the piece a gateway adds; `policy.py` reads its
options, `bucket.py` holds the arithmetic, `memory.py` and `redis.py` are the two backends
(`guardian.ratelimit.redis` is imported only when used: the Redis client is slow to import).
"""

from guardian.ratelimit.bucket import BackendError, Rate, SharedBackend
from guardian.ratelimit.limiter import RateLimitInspector
from guardian.ratelimit.memory import MemoryBackend
from guardian.ratelimit.policy import RateLimitPolicy, ToolRate

__all__ = [
    "BackendError", "MemoryBackend", "Rate", "RateLimitInspector", "RateLimitPolicy", "SharedBackend", "ToolRate",
]
