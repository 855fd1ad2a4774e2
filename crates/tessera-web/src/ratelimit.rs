//! Keyed rate limits on an injected clock (the generic cell rate algorithm).
//!
//! A [`Quota`] allows a burst of `burst` events, then one more every `period`. Each key
//! keeps one number, the time at which its allowance is whole again, so memory per key is
//! constant and nothing runs in the background. A [`RateLimiter`]'s limits are per
//! process: several servers behind a load balancer each apply them. [`Quota::admits`]
//! applies the same algorithm to a state kept elsewhere (a database shared by the servers).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// How many events a key may have: `burst` at once, then one more every `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Events allowed back to back after a quiet spell. At least 1.
    pub burst: u32,
    /// Time after which one more event is allowed. At least 1 µs in memory, 1 ms for a
    /// state kept in a database ([`Quota::admits`]).
    pub period: Duration,
}

impl Quota {
    /// `burst` events, then one per `period`.
    pub const fn new(burst: u32, period: Duration) -> Self {
        Quota { burst, period }
    }

    /// The period in whole milliseconds, at least 1: the unit of limits kept in a
    /// database, whose periods are seconds long.
    pub fn period_ms(&self) -> i64 {
        i64::try_from(self.period.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// How far ahead of now a key's allowance may run, in milliseconds: burst × period.
    pub fn tolerance_ms(&self) -> i64 {
        self.period_ms()
            .saturating_mul(i64::from(self.burst.max(1)))
    }

    /// Whether a key whose allowance is whole at `whole_at_ms` may have one more event at
    /// `now_ms`, and if not, how long it must wait: the check of the algorithm, for a
    /// state kept elsewhere (a database) in milliseconds.
    pub fn admits(&self, whole_at_ms: i64, now_ms: i64) -> Result<(), Limited> {
        let next = whole_at_ms.max(now_ms).saturating_add(self.period_ms());
        excess_wait(next.saturating_sub(now_ms) - self.tolerance_ms(), 1_000)
    }

    fn period_us(&self) -> i64 {
        i64::try_from(self.period.as_micros())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    fn tolerance_us(&self) -> i64 {
        self.period_us()
            .saturating_mul(i64::from(self.burst.max(1)))
    }
}

/// `Ok` when `excess` (in units of `1/per_sec` seconds) is not positive, else the wait.
fn excess_wait(excess: i64, per_sec: u64) -> Result<(), Limited> {
    if excess <= 0 {
        return Ok(());
    }
    let excess = u64::try_from(excess).unwrap_or(u64::MAX);
    Err(Limited {
        retry_after: Duration::from_secs(excess / per_sec)
            + Duration::from_nanos((excess % per_sec) * (1_000_000_000 / per_sec)),
    })
}

/// A refusal: when the next event would be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Time until the key may act again.
    pub retry_after: Duration,
}

impl Limited {
    /// [`retry_after`](Self::retry_after) in whole seconds, rounded up, at least 1: the
    /// value of a `Retry-After` header.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

/// The keys a [`RateLimiter`] holds before it forgets the idle ones.
const DEFAULT_CAPACITY: usize = 100_000;

/// Rate limits per key `K` (an address, an account, a client).
///
/// [`check`](Self::check) counts an event and refuses it when the key is over its quota.
/// For failures only (wrong passwords), [`acquire`](Self::acquire) takes a slot before
/// the attempt, atomically, so that concurrent attempts cannot all pass the check before
/// any of them is counted, and [`refund`](Self::refund) gives it back when the attempt
/// succeeds: successes cost nothing and refused attempts do not count against anyone.
#[derive(Debug)]
pub struct RateLimiter<K> {
    quota: Quota,
    capacity: usize,
    /// For each key, the time (Unix µs) at which its allowance is whole again: periods
    /// shorter than a millisecond allow more than 1,000 events a second.
    whole_at: Mutex<HashMap<K, i64>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter applying `quota` to each key.
    pub fn new(quota: Quota) -> Self {
        Self::with_capacity(quota, DEFAULT_CAPACITY)
    }

    /// A limiter that keeps at most about `capacity` keys: beyond it, keys whose
    /// allowance is whole are forgotten first, then those closest to whole. A flood of
    /// distinct keys can therefore make the limiter forget some, never refuse a key that
    /// has done nothing.
    pub fn with_capacity(quota: Quota, capacity: usize) -> Self {
        RateLimiter {
            quota,
            capacity: capacity.max(2),
            whole_at: Mutex::new(HashMap::new()),
        }
    }

    /// The quota applied.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Counts one event for `key` at `now_ms` unless it is over its quota, in which case
    /// nothing is counted and the refusal says when to retry.
    pub fn check(&self, key: &K, now_ms: i64) -> Result<(), Limited> {
        let now = micros(now_ms);
        let mut map = self.lock();
        let current = map.get(key).copied().unwrap_or(now).max(now);
        let next = current.saturating_add(self.quota.period_us());
        self.allowed(next, now)?;
        self.insert(&mut map, key, next, now);
        Ok(())
    }

    /// Like [`check`](Self::check), and also says whether this event used up the key's
    /// allowance (the next one would be refused; this one was the last allowed).
    pub fn acquire(&self, key: &K, now_ms: i64) -> Result<bool, Limited> {
        let now = micros(now_ms);
        let mut map = self.lock();
        let current = map.get(key).copied().unwrap_or(now).max(now);
        let next = current.saturating_add(self.quota.period_us());
        self.allowed(next, now)?;
        let exhausted = self
            .allowed(next.saturating_add(self.quota.period_us()), now)
            .is_err();
        self.insert(&mut map, key, next, now);
        Ok(exhausted)
    }

    /// For limits on failures that are only known after the work (an invalid token, a taken
    /// username): takes a slot before an attempt only from a key that still owes failures
    /// (its allowance is not whole), and says whether it did. A key that owes nothing takes
    /// no slot, so any number of concurrent attempts from a clean key run (a busy address
    /// of good requests is never refused); count such an attempt afterwards with
    /// [`check`](Self::check) if it failed. Once a key owes, every attempt holds a slot
    /// before it runs, so concurrent failures cannot pass together; give it back with
    /// [`refund`](Self::refund) unless the attempt failed.
    pub fn acquire_if_owing(&self, key: &K, now_ms: i64) -> Result<bool, Limited> {
        let now = micros(now_ms);
        let mut map = self.lock();
        let Some(current) = map.get(key).copied().filter(|at| *at > now) else {
            return Ok(false);
        };
        let next = current.saturating_add(self.quota.period_us());
        self.allowed(next, now)?;
        self.insert(&mut map, key, next, now);
        Ok(true)
    }

    /// Settles an attempt begun with [`acquire_if_owing`](Self::acquire_if_owing): a
    /// failure keeps the slot it took, or is counted now if it took none; anything else
    /// gives its slot back.
    pub fn settle(&self, key: &K, taken: bool, failed: bool, now_ms: i64) {
        match (taken, failed) {
            // Over the quota already: nothing more to count.
            (false, true) => {
                let _ = self.check(key, now_ms);
            }
            (true, false) => self.refund(key, now_ms),
            _ => {}
        }
    }

    /// Gives back one event [`acquire`](Self::acquire)d for `key` (the attempt turned out
    /// not to be a failure). Never credits more than the key had taken.
    pub fn refund(&self, key: &K, now_ms: i64) {
        let now = micros(now_ms);
        let mut map = self.lock();
        if let Some(at) = map.get_mut(key) {
            *at = at.saturating_sub(self.quota.period_us()).max(now);
        }
    }

    /// The number of keys held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn allowed(&self, next: i64, now: i64) -> Result<(), Limited> {
        excess_wait(
            next.saturating_sub(now) - self.quota.tolerance_us(),
            1_000_000,
        )
    }

    fn insert(&self, map: &mut HashMap<K, i64>, key: &K, whole_at: i64, now: i64) {
        if map.len() >= self.capacity && !map.contains_key(key) {
            map.retain(|_, at| *at > now);
            if map.len() >= self.capacity / 2 {
                // Still full of active keys: forget the half closest to whole.
                let mut times: Vec<i64> = map.values().copied().collect();
                let middle = times.len() / 2;
                let (_, cut, _) = times.select_nth_unstable(middle);
                let cut = *cut;
                map.retain(|_, at| *at > cut);
            }
        }
        map.insert(key.clone(), whole_at);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, i64>> {
        match self.whole_at.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Unix milliseconds as microseconds.
fn micros(ms: i64) -> i64 {
    ms.saturating_mul(1_000)
}

#[cfg(test)]
#[path = "tests/ratelimit.rs"]
mod tests;
