//! The verified-token cache: a token whose signature and claims were checked once is not
//! checked again until it expires, as long as the key that signed it is still published.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;

use crate::Claims;
use crate::jwks::VerifyingKey;

/// Shards, so that the request workers rarely wait on one another.
const SHARDS: usize = 16;

/// How many entries a full shard looks at for an expired one to drop.
const EVICTION_SCAN: usize = 16;

/// The SHA-256 digest of a token: the cache never holds the token itself.
pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn token_digest(token: &str) -> TokenDigest {
    let mut out = [0; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// What a verified token established.
#[derive(Clone)]
pub(crate) struct Verified {
    pub claims: Arc<Claims>,
    /// The key that verified the signature, under its `kid`.
    pub kid: Arc<str>,
    pub key: Arc<VerifyingKey>,
}

/// Hit and miss counts of a token cache: a [`Validator`](crate::Validator)'s verified
/// tokens, or an [`Introspection`](crate::Introspection)'s answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCacheStats {
    /// Tokens answered from the cache: no signature verified, no claim parsed.
    pub hits: u64,
    /// Lookups that found nothing usable and validated the token in full.
    pub misses: u64,
    /// Entries held now.
    pub entries: u64,
    /// The most entries it holds.
    pub capacity: u64,
}

/// A value kept until a time (seconds since the epoch).
struct Entry<V> {
    value: V,
    until: i64,
}

/// One shard of a [`TokenCache`].
type Shard<V> = Mutex<HashMap<TokenDigest, Entry<V>>>;

/// A bounded map from token digest to what checking the token established.
pub(crate) struct TokenCache<V> {
    shards: Box<[Shard<V>]>,
    per_shard: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<V> std::fmt::Debug for TokenCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl<V: Clone> TokenCache<V> {
    /// A cache of about `capacity` entries (rounded up to a multiple of the shard count);
    /// `None` for a capacity of zero.
    pub fn new(capacity: usize) -> Option<Self> {
        if capacity == 0 {
            return None;
        }
        let per_shard = capacity.div_ceil(SHARDS);
        Some(TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    fn shard(&self, digest: &TokenDigest) -> &Shard<V> {
        &self.shards[usize::from(digest[0]) % SHARDS]
    }

    /// The value for `digest` unless its time passed by `now`; the caller may check more.
    pub fn get(&self, digest: &TokenDigest, now: i64) -> Option<V> {
        let shard = match self.shard(digest).lock() {
            Ok(shard) => shard,
            Err(poisoned) => poisoned.into_inner(),
        };
        shard
            .get(digest)
            .filter(|entry| now <= entry.until)
            .map(|entry| entry.value.clone())
    }

    /// Counts a lookup answered from the cache, or not.
    pub fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops the entry for `digest` (it no longer holds).
    pub fn remove(&self, digest: &TokenDigest) {
        let mut shard = match self.shard(digest).lock() {
            Ok(shard) => shard,
            Err(poisoned) => poisoned.into_inner(),
        };
        shard.remove(digest);
    }

    /// Keeps `value` under `digest` until `until`. A full shard first makes room: the
    /// first expired entry among a few it looks at, or else the first of them (a digest is
    /// uniformly distributed, so that is as good as a random one). The work is bounded
    /// whatever the capacity.
    pub fn insert(&self, digest: TokenDigest, value: V, until: i64, now: i64) {
        let mut shard = match self.shard(&digest).lock() {
            Ok(shard) => shard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&digest) {
            let mut candidates = shard.iter().take(EVICTION_SCAN);
            let victim = candidates
                .clone()
                .find(|(_, entry)| entry.until < now)
                .or_else(|| candidates.next())
                .map(|(key, _)| *key);
            if let Some(victim) = victim {
                shard.remove(&victim);
            }
        }
        shard.insert(digest, Entry { value, until });
    }

    pub fn stats(&self) -> TokenCacheStats {
        let entries = self
            .shards
            .iter()
            .map(|shard| match shard.lock() {
                Ok(shard) => shard.len(),
                Err(poisoned) => poisoned.into_inner().len(),
            })
            .sum::<usize>();
        TokenCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: entries as u64,
            capacity: (self.per_shard * SHARDS) as u64,
        }
    }
}
