//! Per-member and per-token rate limits: a token bucket for each key, refilled at a
//! sustained rate up to a burst. A request over the limit is answered 429 with
//! `Retry-After`. Buckets live in memory, sharded to keep lock contention low; the number
//! of keys tracked is bounded, and when a shard is full its idle (full) buckets are
//! dropped first, then the shard is reset (which can only ever be lenient).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 16;

/// What a bucket is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateKey {
    Member(u64),
    ServiceToken([u8; 16]),
}

/// Sustained rate and burst of one kind of key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    member: Rate,
    service: Rate,
    keys_per_shard_max: usize,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<RateKey, Bucket>>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("member", &self.member)
            .field("service", &self.service)
            .finish()
    }
}

impl RateLimiter {
    pub fn new(member: Rate, service: Rate, keys_max: usize) -> Self {
        RateLimiter {
            member,
            service,
            keys_per_shard_max: (keys_max / SHARDS).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token from the key's bucket at `now`; when there is none, the number of
    /// whole seconds until there will be.
    pub fn acquire(&self, key: RateKey, now: Instant) -> Result<(), u64> {
        let rate = match key {
            RateKey::Member(_) => self.member,
            RateKey::ServiceToken(_) => self.service,
        };
        let per_second = f64::from(rate.per_second.max(1));
        let burst = f64::from(rate.burst.max(1));
        let shard_index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(shard_index) else {
            return Ok(());
        };
        // A poisoned shard only ever held counters: keep using them.
        let mut buckets = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= self.keys_per_shard_max && !buckets.contains_key(&key) {
            evict(
                &mut buckets,
                now,
                per_second,
                burst,
                self.keys_per_shard_max,
            );
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_seconds = ((1.0 - bucket.tokens) / per_second).ceil();
            Err((wait_seconds as u64).max(1))
        }
    }
}

fn evict(
    buckets: &mut HashMap<RateKey, Bucket>,
    now: Instant,
    per_second: f64,
    burst: f64,
    keys_max: usize,
) {
    buckets.retain(|_, bucket| {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens + elapsed * per_second < burst
    });
    if buckets.len() >= keys_max {
        buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_allowed_then_refused_until_refilled() {
        let limiter = RateLimiter::new(
            Rate {
                per_second: 2,
                burst: 3,
            },
            Rate {
                per_second: 100,
                burst: 100,
            },
            1_000,
        );
        let start = Instant::now();
        let key = RateKey::Member(7);
        for _ in 0..3 {
            assert_eq!(limiter.acquire(key, start), Ok(()));
        }
        assert_eq!(limiter.acquire(key, start), Err(1));
        assert_eq!(limiter.acquire(RateKey::Member(8), start), Ok(()));
        assert_eq!(
            limiter.acquire(key, start + Duration::from_millis(500)),
            Ok(())
        );
    }
}
