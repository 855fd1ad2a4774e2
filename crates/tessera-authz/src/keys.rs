//! Signing keys that rotate themselves: a key is published (`next`) well before it signs,
//! signs (`active`) for one rotation period, and stays published (`retired`) until every
//! token it signed has expired; then it leaves the JWKS.
//!
//! Every instance on one database runs the same schedule from the same stored times. The
//! store makes each transition atomic; each instance re-reads the keys every
//! [`KEY_REFRESH_INTERVAL`] and switches to a `next` key by itself at the stored activation
//! time, so instances agree on the signing key without talking to each other.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use tessera_core::seal::{self, MasterKey};
use tessera_core::{Clock, JwkSet, SigningAlgorithm, SigningKey};
use tessera_store::{
    AuditKind, AuditLog, KeySealing, KeyState, NewAuditEvent, NewKey, Store, StoreError, StoredKey,
};

/// How often a running server re-reads the keys and carries out due transitions. Key
/// changes made by another instance or by `tessera keys` show within this time.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Clock difference tolerated between the machines involved (authorization servers,
/// resource servers, caches), and the guard's default `exp` leeway with room to spare.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(60);

/// The `exp` leeway resource servers allow (the guard's default).
pub const VERIFIER_LEEWAY: Duration = Duration::from_secs(30);

/// The longest rotation period, publish-ahead or retire time accepted: ten years.
pub const MAX_SCHEDULE_TIME: Duration = Duration::from_secs(3650 * 86_400);

/// How long resource servers may cache the JWKS at most. The `max-age` sent is shorter
/// when a key activates sooner.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// Default time between two activations: 30 days.
pub const DEFAULT_ROTATION_PERIOD: Duration = Duration::from_secs(30 * 86_400);
/// Default time a key is published before it signs: one day, so that even caches that
/// ignore `max-age` and refresh daily know a key before they see a token it signed.
pub const DEFAULT_PUBLISH_AHEAD: Duration = Duration::from_secs(86_400);
/// Default time a retired key stays published: 25 hours, the longest access-token lifetime
/// a client may be given (one day) plus an hour.
pub const DEFAULT_RETIRE_AFTER: Duration = Duration::from_secs(25 * 3600);

/// When keys change and what new keys are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySchedule {
    /// The algorithm of keys created from now on. Default RS256, which RFC 9068 requires
    /// every resource server to accept. Existing keys keep theirs.
    pub algorithm: SigningAlgorithm,
    /// Time from one activation to the next. Default [`DEFAULT_ROTATION_PERIOD`].
    pub rotation_period: Duration,
    /// Time a new key is published before it signs. Default [`DEFAULT_PUBLISH_AHEAD`].
    pub publish_ahead: Duration,
    /// Time a retired key stays published. Default [`DEFAULT_RETIRE_AFTER`].
    pub retire_after: Duration,
}

impl Default for KeySchedule {
    fn default() -> Self {
        KeySchedule {
            algorithm: SigningAlgorithm::RS256,
            rotation_period: DEFAULT_ROTATION_PERIOD,
            publish_ahead: DEFAULT_PUBLISH_AHEAD,
            retire_after: DEFAULT_RETIRE_AFTER,
        }
    }
}

impl KeySchedule {
    /// The shortest publish-ahead time that is safe. A cache may keep a JWKS fetched just
    /// before the key was published for [`JWKS_MAX_AGE`], from an instance that learned of
    /// the key [`KEY_REFRESH_INTERVAL`] late; the publishing instance's clock and the first
    /// signer's clock may each be [`CLOCK_LEEWAY`] off.
    pub fn min_publish_ahead() -> Duration {
        JWKS_MAX_AGE + KEY_REFRESH_INTERVAL + 2 * CLOCK_LEEWAY
    }

    /// How much longer than a token's lifetime its key must stay published: a token
    /// signed in the last instant of the key's activity by an instance whose clock is
    /// [`CLOCK_LEEWAY`] slow (or, after `rotate --now`, that learns of the change
    /// [`KEY_REFRESH_INTERVAL`] late), accepted with [`VERIFIER_LEEWAY`] past `exp`, while
    /// the instance that removes the key runs [`CLOCK_LEEWAY`] fast.
    pub fn retire_margin() -> Duration {
        KEY_REFRESH_INTERVAL + 2 * CLOCK_LEEWAY + VERIFIER_LEEWAY
    }

    /// The longest access-token lifetime this schedule keeps verifiable; longer
    /// per-client lifetimes are shortened to this.
    pub fn longest_token_lifetime(&self) -> Duration {
        self.retire_after.saturating_sub(Self::retire_margin())
    }

    /// Refuses a schedule under which a resource server could see a token before its
    /// key, or after its key was removed. `access_token_ttl` is the default lifetime.
    pub fn check(&self, access_token_ttl: Duration) -> Result<(), String> {
        for (name, value) in [
            ("rotation period", self.rotation_period),
            ("publish-ahead time", self.publish_ahead),
            ("retire time", self.retire_after),
        ] {
            if value > MAX_SCHEDULE_TIME {
                return Err(format!(
                    "the key {name} ({}) may be at most {}",
                    human(value),
                    human(MAX_SCHEDULE_TIME)
                ));
            }
        }
        let min_publish = Self::min_publish_ahead();
        if self.publish_ahead < min_publish {
            return Err(format!(
                "the key publish-ahead time ({}) must be at least {}: the JWKS max-age ({}) \
                 plus the key refresh interval ({}) plus twice the clock leeway ({}), or a \
                 resource server could see a token before its key",
                human(self.publish_ahead),
                human(min_publish),
                human(JWKS_MAX_AGE),
                human(KEY_REFRESH_INTERVAL),
                human(CLOCK_LEEWAY),
            ));
        }
        if self.rotation_period <= self.publish_ahead {
            return Err(format!(
                "the key rotation period ({}) must be longer than the publish-ahead time ({})",
                human(self.rotation_period),
                human(self.publish_ahead)
            ));
        }
        let needed = access_token_ttl + Self::retire_margin();
        if self.retire_after < needed {
            return Err(format!(
                "the key retire time ({}) must be at least {}: the access-token lifetime \
                 ({}) plus the key refresh interval ({}), twice the clock leeway ({}) and \
                 the verifiers' expiry leeway ({}), or tokens would outlive their key",
                human(self.retire_after),
                human(needed),
                human(access_token_ttl),
                human(KEY_REFRESH_INTERVAL),
                human(CLOCK_LEEWAY),
                human(VERIFIER_LEEWAY),
            ));
        }
        Ok(())
    }
}

/// `90061` seconds as `1d1h1m1s`.
pub fn human(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Why keys could not be loaded, created or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key material is unusable (including a wrong master key).
    #[error(transparent)]
    Key(#[from] tessera_core::Error),
    /// Something else, described.
    #[error("{0}")]
    Other(String),
}

/// Generates a key of `algorithm` off the async runtime (RSA takes a while).
pub async fn generate(algorithm: SigningAlgorithm) -> Result<SigningKey, KeyError> {
    tokio::task::spawn_blocking(move || SigningKey::generate(algorithm))
        .await
        .map_err(|e| KeyError::Other(format!("key generation was interrupted: {e}")))?
        .map_err(KeyError::from)
}

/// `key` as it is stored: its private half sealed under `master` when there is one.
pub fn to_stored(key: &SigningKey, master: Option<&MasterKey>) -> Result<NewKey, KeyError> {
    let mut new = NewKey::from(key);
    if let Some(master) = master {
        new.private_key = master.seal(key.kid(), key.pkcs8_der())?;
    }
    Ok(new)
}

/// The signing key in `stored`, unsealed with `master` when it is sealed.
pub fn from_stored(stored: &StoredKey, master: Option<&MasterKey>) -> Result<SigningKey, KeyError> {
    if stored.private_key.is_empty() {
        return Err(KeyError::Other(format!(
            "key {} has no private key (it is retired)",
            stored.kid
        )));
    }
    let opened;
    let der = if seal::is_sealed(&stored.private_key) {
        let Some(master) = master else {
            return Err(KeyError::Other(format!(
                "the private key of {} is encrypted: set TESSERA_MASTER_KEY to the master key \
                 it was stored under",
                stored.kid
            )));
        };
        opened = master.open(&stored.kid, &stored.private_key)?;
        opened.as_slice()
    } else {
        stored.private_key.as_slice()
    };
    let key = SigningKey::from_pkcs8(stored.algorithm, der)?;
    if key.kid() != stored.kid {
        return Err(KeyError::Other(format!(
            "the private key stored as {} belongs to another key",
            stored.kid
        )));
    }
    Ok(key)
}

/// Seals under `master`, in place and in one transaction, every stored private key kept
/// unencrypted (a database that ran without a master key until now), so that none stays
/// in the clear. A key is sealed only if it parses as the key its id names. Returns the
/// kids of the keys found unencrypted, or none when another instance sealed them first.
pub async fn seal_plaintext_keys(
    store: &dyn Store,
    master: &MasterKey,
) -> Result<Vec<String>, KeyError> {
    let keys = store.published_keys().await?;
    seal_plaintext_among(store, master, &keys).await
}

/// Whether `stored` keeps its private key unencrypted.
pub fn is_plaintext(stored: &StoredKey) -> bool {
    !stored.private_key.is_empty() && !seal::is_sealed(&stored.private_key)
}

/// [`seal_plaintext_keys`] for the unencrypted keys among `keys`, as just read from the
/// store. Nothing is written when none is unencrypted.
async fn seal_plaintext_among(
    store: &dyn Store,
    master: &MasterKey,
    keys: &[StoredKey],
) -> Result<Vec<String>, KeyError> {
    let mut sealings = Vec::new();
    for stored in keys.iter().filter(|k| is_plaintext(k)) {
        let key = from_stored(stored, None)?;
        sealings.push(KeySealing {
            sealed: master.seal(key.kid(), key.pkcs8_der())?,
            kid: stored.kid.clone(),
            plaintext: stored.private_key.clone(),
        });
    }
    if sealings.is_empty() {
        return Ok(Vec::new());
    }
    let kids = sealings.iter().map(|s| s.kid.clone()).collect();
    // Zero when another instance sealed them first, which is as good.
    let sealed = store.seal_private_keys(&sealings).await?;
    Ok(if sealed == 0 { Vec::new() } else { kids })
}

/// What [`publish_next`] publishes: a key of `algorithm` that signs `publish_ahead` after
/// it is stored, and not before `not_before`.
#[derive(Clone, Copy, Debug)]
pub struct NextKey {
    /// The new key's algorithm.
    pub algorithm: SigningAlgorithm,
    /// How long the key is published before it signs.
    pub publish_ahead: Duration,
    /// The earliest activation: the end of the active key's period, on schedule.
    pub not_before: Option<DateTime<Utc>>,
}

/// How [`publish_next`] ended.
#[derive(Debug)]
pub enum Publication {
    /// The key was published here at `at`; it signs from `activate_at`.
    Published {
        /// The stored key.
        key: StoredKey,
        /// When it starts signing.
        activate_at: DateTime<Utc>,
        /// When it was published.
        at: DateTime<Utc>,
    },
    /// Another instance or command published a next key first: this one.
    Lost(StoredKey),
}

/// Generates a key and publishes it as the next signing key, unless a next key exists
/// already: the one way the server's key loop and `tessera keys rotate` publish a key.
/// The publish-ahead time counts from after the key is generated (RSA takes a while), by
/// `clock`. The caller records the audit event its way.
pub async fn publish_next(
    store: &dyn Store,
    clock: &Clock,
    next: NextKey,
    master: Option<&MasterKey>,
) -> Result<Publication, KeyError> {
    let generated = generate(next.algorithm).await?;
    let now = clock.now_utc();
    let earliest = now + chrono_duration(next.publish_ahead);
    let activate_at = next.not_before.map_or(earliest, |due| due.max(earliest));
    let stored = store
        .insert_next_key_if_none(&to_stored(&generated, master)?, activate_at, now)
        .await?;
    Ok(if stored.kid == generated.kid() {
        Publication::Published {
            key: stored,
            activate_at,
            at: now,
        }
    } else {
        Publication::Lost(stored)
    })
}

/// The keys one instance works with, rebuilt whenever the stored keys change.
struct Ring {
    /// What the ring was built from: kid, state and activation time of each key.
    built_from: Vec<(String, KeyState, Option<DateTime<Utc>>)>,
    active: Arc<SigningKey>,
    /// The active key's activation, in Unix milliseconds.
    active_since: i64,
    /// The next key and its activation time, in Unix milliseconds.
    next: Option<(Arc<SigningKey>, i64)>,
    /// Every published key, for checking our own tokens.
    verifying: HashMap<String, (jsonwebtoken::Algorithm, jsonwebtoken::DecodingKey)>,
    jwks: Bytes,
    etag: String,
}

/// A JWKS response: the document, its entity tag and how long it may be cached.
#[derive(Debug)]
pub struct JwksResponse {
    /// The serialised JWKS.
    pub body: Bytes,
    /// A strong entity tag (quoted).
    pub etag: String,
    /// Seconds a cache may keep it: [`JWKS_MAX_AGE`], or less when a key activates sooner.
    pub max_age: u64,
}

/// The signing keys of one server, kept in step with the store.
pub struct KeyManager {
    store: Arc<dyn Store>,
    clock: Clock,
    schedule: KeySchedule,
    master: Option<Arc<MasterKey>>,
    ring: RwLock<Arc<Ring>>,
    /// Parsed private keys by kid, so an unchanged key is never parsed twice.
    parsed: std::sync::Mutex<HashMap<String, Arc<SigningKey>>>,
    /// Serialises ticks and reloads, so an older ring never replaces a newer one.
    ticking: tokio::sync::Mutex<()>,
    /// Set while the keys cannot be loaded.
    stale: std::sync::atomic::AtomicBool,
    /// When a token with an unknown `kid` last made this server re-read the keys, Unix
    /// milliseconds: at most one such reload a second.
    unknown_kid_reload: std::sync::atomic::AtomicI64,
    /// When the keys were last read from the store, Unix milliseconds.
    loaded_at: std::sync::atomic::AtomicI64,
    /// Where key transitions made here are recorded.
    audit: Option<AuditLog>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("schedule", &self.schedule)
            .field("sealed", &self.master.is_some())
            .finish_non_exhaustive()
    }
}

impl KeyManager {
    /// Loads the keys, creating the first one on an empty database and carrying out any
    /// transition that is due.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Clock,
        schedule: KeySchedule,
        master: Option<Arc<MasterKey>>,
        audit: Option<AuditLog>,
    ) -> Result<Self, KeyError> {
        let now = clock.now_utc();
        if store.active_key().await?.is_none() {
            let generated = generate(schedule.algorithm).await?;
            let stored = store
                .insert_active_key_if_none(&to_stored(&generated, master.as_deref())?, now)
                .await?;
            if stored.kid == generated.kid() {
                tracing::info!(kid = %stored.kid, algorithm = %generated.algorithm(), "created the first signing key");
                if let Some(audit) = &audit {
                    audit
                        .record(
                            NewAuditEvent::new(AuditKind::KeyActivated, now)
                                .target(stored.kid.as_str())
                                .detail(format!("first key, {}", generated.algorithm())),
                        )
                        .await;
                }
            }
        }
        if let Some(master) = &master {
            let sealed = seal_plaintext_keys(store.as_ref(), master).await?;
            if !sealed.is_empty() {
                tracing::info!(kids = ?sealed, "sealed the private signing keys stored unencrypted under the master key");
            }
        }
        let keys = store.published_keys().await?;
        let mut parsed = HashMap::new();
        let ring = build_ring(&keys, master.as_deref(), &mut parsed)?;
        let manager = KeyManager {
            store,
            clock,
            schedule,
            master,
            ring: RwLock::new(Arc::new(ring)),
            parsed: std::sync::Mutex::new(parsed),
            ticking: tokio::sync::Mutex::new(()),
            stale: std::sync::atomic::AtomicBool::new(false),
            unknown_kid_reload: std::sync::atomic::AtomicI64::new(0),
            loaded_at: std::sync::atomic::AtomicI64::new(0),
            audit,
        };
        manager.tick().await?;
        Ok(manager)
    }

    async fn audit(&self, event: NewAuditEvent) {
        if let Some(audit) = &self.audit {
            audit.record(event).await;
        }
    }

    /// The schedule in force.
    pub fn schedule(&self) -> &KeySchedule {
        &self.schedule
    }

    fn ring(&self) -> Arc<Ring> {
        match self.ring.read() {
            Ok(ring) => Arc::clone(&ring),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key that signs now: the next key from its activation time on, even before the
    /// store records the transition, so every instance switches at the same moment.
    pub fn signer(&self) -> Arc<SigningKey> {
        let ring = self.ring();
        match &ring.next {
            Some((next, at)) if self.clock.now_millis() >= *at => Arc::clone(next),
            _ => Arc::clone(&ring.active),
        }
    }

    /// The published key `kid` with its one algorithm, for checking our own tokens
    /// (introspection).
    pub fn verifying_key(
        &self,
        kid: &str,
    ) -> Option<(jsonwebtoken::Algorithm, jsonwebtoken::DecodingKey)> {
        self.ring().verifying.get(kid).cloned()
    }

    /// The algorithms of the published keys, by their JWA names, sorted, each once: what
    /// an ID token or access token from this server may be signed with.
    pub fn algorithms(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ring()
            .verifying
            .values()
            .filter_map(|(algorithm, _)| serde_json::to_value(algorithm).ok())
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The JWKS with its entity tag and a `max-age` that never reaches past the next
    /// activation.
    pub fn jwks(&self) -> JwksResponse {
        let ring = self.ring();
        let now = self.clock.now_millis();
        let period = millis(self.schedule.rotation_period);
        // With no key waiting, none can activate before the publish-ahead time has passed.
        let earliest = now.saturating_add(millis(self.schedule.publish_ahead));
        let upcoming = match &ring.next {
            Some((_, at)) if now < *at => *at,
            Some((_, at)) => at.saturating_add(period).max(earliest),
            None => ring.active_since.saturating_add(period).max(earliest),
        };
        let until = u64::try_from(upcoming.saturating_sub(now) / 1000).unwrap_or(0);
        JwksResponse {
            body: ring.jwks.clone(),
            etag: ring.etag.clone(),
            max_age: until.min(JWKS_MAX_AGE.as_secs()),
        }
    }

    /// Whether the last attempt to load the keys from the store failed: this instance
    /// may be signing with a key the others have moved on from. Readiness reports it.
    pub fn is_stale(&self) -> bool {
        self.stale.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Carries out every transition due now (activation, preparing the next key, removal
    /// of expired keys) and reloads the keys when they changed, here or elsewhere. A step
    /// that fails does not stop the others, and the keys are always re-read; the first
    /// error is returned.
    pub async fn tick(&self) -> Result<(), KeyError> {
        let _serialised = self.ticking.lock().await;
        let transitions = self.transitions().await;
        let reloaded = self.reload_locked().await;
        self.stale
            .store(reloaded.is_err(), std::sync::atomic::Ordering::Release);
        if let Err(err) = &reloaded {
            tracing::error!(error = %crate::error::ErrorChain(err), "cannot load the signing keys; this instance reports itself unready until it can");
        }
        transitions.and(reloaded)
    }

    async fn transitions(&self) -> Result<(), KeyError> {
        let now = self.clock.now_utc();
        let retire_after = chrono_duration(self.schedule.retire_after);
        // Only an instance that holds the due key (and so signs with it already) records
        // its activation.
        let due = self
            .ring()
            .next
            .as_ref()
            .is_some_and(|(_, at)| self.clock.now_millis() >= *at);
        let mut first_error = None;
        if due {
            match self.store.activate_due_key(now, retire_after).await {
                Ok(Some(kid)) => {
                    tracing::info!(%kid, "signing key activated; the previous key is retired");
                    self.audit(
                        NewAuditEvent::new(AuditKind::KeyActivated, now)
                            .target(kid)
                            .detail("scheduled; the previous key is retired"),
                    )
                    .await;
                }
                Ok(None) => {}
                Err(err) => first_error = Some(KeyError::from(err)),
            }
        }
        if let Err(err) = self.prepare_next(now).await {
            first_error.get_or_insert(err);
        }
        match self.store.remove_expired_keys(now).await {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(removed, "retired signing keys left the JWKS");
                self.audit(
                    NewAuditEvent::new(AuditKind::KeyRemoved, now)
                        .detail(format!("{removed} retired keys expired")),
                )
                .await;
            }
            Err(err) => {
                first_error.get_or_insert(KeyError::from(err));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Publishes the next key when the active key's period is about to end.
    async fn prepare_next(&self, now: DateTime<Utc>) -> Result<(), KeyError> {
        let keys = self.store.published_keys().await?;
        let active = keys.iter().find(|k| k.state == KeyState::Active);
        let has_next = keys.iter().any(|k| k.state == KeyState::Next);
        if let (Some(active), false) = (active, has_next) {
            let activated = active.activated_at.unwrap_or(active.created_at);
            let due = activated + chrono_duration(self.schedule.rotation_period);
            if now >= due - chrono_duration(self.schedule.publish_ahead) {
                let published = publish_next(
                    self.store.as_ref(),
                    &self.clock,
                    NextKey {
                        algorithm: self.schedule.algorithm,
                        publish_ahead: self.schedule.publish_ahead,
                        not_before: Some(due),
                    },
                    self.master.as_deref(),
                )
                .await?;
                if let Publication::Published {
                    key,
                    activate_at,
                    at,
                } = published
                {
                    tracing::info!(kid = %key.kid, algorithm = %key.algorithm, %activate_at, "published the next signing key");
                    self.audit(
                        NewAuditEvent::new(AuditKind::KeyPublished, at)
                            .target(key.kid.as_str())
                            .detail(format!(
                                "{}, signs from {}",
                                key.algorithm,
                                activate_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                            )),
                    )
                    .await;
                }
            }
        }
        Ok(())
    }

    /// Re-reads the keys when they were last read more than a second ago, for the JWKS:
    /// a key that another instance (or `tessera keys rotate --now`) has just activated is
    /// published by every instance within a second, not only after each one's next
    /// [`KEY_REFRESH_INTERVAL`] tick. A resource server that meets a token signed by such a
    /// key fetches the JWKS once and then waits out its cooldown: the set it gets must
    /// hold the key.
    pub async fn reload_if_older_than_a_second(&self) {
        self.reload_at_most_once_a_second(&self.loaded_at, "for the JWKS")
            .await;
    }

    /// Re-reads the keys when `kid` is not among those this server knows: another instance
    /// (or `tessera keys rotate --now`) may have activated a key this one has not loaded
    /// yet, up to [`KEY_REFRESH_INTERVAL`] ago. At most one such reload a second, whatever
    /// the `kid`s, so made-up ones cost the database little.
    pub async fn reload_for_unknown_kid(&self, kid: &str) {
        if !self.ring().verifying.contains_key(kid) {
            self.reload_at_most_once_a_second(&self.unknown_kid_reload, "for an unknown kid")
                .await;
        }
    }

    /// Re-reads the keys unless `last` (Unix milliseconds) says an attempt was made less
    /// than a second ago, and waits for it at most 300 ms: one request a second tries,
    /// and while the database is away the others go on with the keys in memory. Failures
    /// leave the keys as they were (the tick reports them).
    async fn reload_at_most_once_a_second(&self, last: &std::sync::atomic::AtomicI64, why: &str) {
        use std::sync::atomic::Ordering;
        let now = self.clock.now_millis();
        let before = last.load(Ordering::Acquire);
        if now - before < 1000
            || last
                .compare_exchange(before, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        match tokio::time::timeout(std::time::Duration::from_millis(300), self.reload()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %crate::error::ErrorChain(&err), "reloading the signing keys {why} failed");
            }
            Err(_) => tracing::warn!("reloading the signing keys {why} timed out"),
        }
    }

    /// Re-reads the keys and rebuilds the ring if they changed. With a master key, a
    /// private key found unencrypted (stored by `tessera keys rotate` run without the
    /// master key, say) is sealed in place first. Keys loaded after a failure make the
    /// instance ready again at once, not only at the next tick.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let _serialised = self.ticking.lock().await;
        let reloaded = self.reload_locked().await;
        if reloaded.is_ok() {
            self.stale
                .store(false, std::sync::atomic::Ordering::Release);
        }
        reloaded
    }

    async fn reload_locked(&self) -> Result<(), KeyError> {
        let keys = self.store.published_keys().await?;
        self.loaded_at.store(
            self.clock.now_millis(),
            std::sync::atomic::Ordering::Release,
        );
        if let Some(master) = &self.master {
            // Only when a key in the clear is there: the steady state writes nothing.
            if keys.iter().any(is_plaintext) {
                match seal_plaintext_among(self.store.as_ref(), master, &keys).await {
                    Ok(sealed) if !sealed.is_empty() => {
                        tracing::warn!(kids = ?sealed, "sealed private signing keys found stored unencrypted under the master key");
                    }
                    Ok(_) => {}
                    // The keys still load; the next refresh tries again.
                    Err(err) => {
                        tracing::error!(error = %crate::error::ErrorChain(&err), "cannot seal the private signing keys found stored unencrypted");
                    }
                }
            }
        }
        if fingerprint(&keys) == self.ring().built_from {
            return Ok(());
        }
        let ring = {
            let mut parsed = match self.parsed.lock() {
                Ok(parsed) => parsed,
                Err(poisoned) => poisoned.into_inner(),
            };
            build_ring(&keys, self.master.as_deref(), &mut parsed)?
        };
        match self.ring.write() {
            Ok(mut current) => *current = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
        Ok(())
    }
}

fn fingerprint(keys: &[StoredKey]) -> Vec<(String, KeyState, Option<DateTime<Utc>>)> {
    keys.iter()
        .map(|k| (k.kid.clone(), k.state, k.activate_at))
        .collect()
}

fn build_ring(
    keys: &[StoredKey],
    master: Option<&MasterKey>,
    parsed: &mut HashMap<String, Arc<SigningKey>>,
) -> Result<Ring, KeyError> {
    let mut load = |stored: &StoredKey| -> Result<Arc<SigningKey>, KeyError> {
        if let Some(key) = parsed.get(&stored.kid) {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(from_stored(stored, master)?);
        parsed.insert(stored.kid.clone(), Arc::clone(&key));
        Ok(key)
    };
    let active = keys
        .iter()
        .find(|k| k.state == KeyState::Active)
        .ok_or_else(|| KeyError::Other("the store holds no active signing key".into()))?;
    let active_since = active.activated_at.unwrap_or(active.created_at);
    let active_key = load(active)?;
    let next = match keys.iter().find(|k| k.state == KeyState::Next) {
        Some(next) => {
            let at = next.activate_at.ok_or_else(|| {
                KeyError::Other(format!("the next key {} has no activation time", next.kid))
            })?;
            Some((load(next)?, at.timestamp_millis()))
        }
        None => None,
    };
    // Forget the private keys of keys that no longer sign.
    parsed.retain(|kid, _| {
        keys.iter()
            .any(|k| &k.kid == kid && k.state != KeyState::Retired)
    });
    let mut verifying = HashMap::new();
    for key in keys {
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&key.public_jwk).map_err(|e| {
            KeyError::Other(format!("the public key of {} is unusable: {e}", key.kid))
        })?;
        let algorithm = key.algorithm.as_str().parse().map_err(|_| {
            KeyError::Other(format!(
                "the algorithm of {} is unknown to the verifier",
                key.kid
            ))
        })?;
        verifying.insert(key.kid.clone(), (algorithm, decoding));
    }
    let set = JwkSet {
        keys: keys.iter().map(|k| k.public_jwk.clone()).collect(),
    };
    let jwks = serde_json::to_vec(&set)
        .map_err(|e| KeyError::Other(format!("cannot serialise the JWKS: {e}")))?;
    let etag = format!(
        "\"{}\"",
        &tessera_core::secret::digest(&String::from_utf8_lossy(&jwks))[..22]
    );
    Ok(Ring {
        built_from: fingerprint(keys),
        active: active_key,
        active_since: active_since.timestamp_millis(),
        next,
        verifying,
        jwks: Bytes::from(jwks),
        etag,
    })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_next_key_is_published_once_and_signs_after_the_publish_ahead_time() {
        use tessera_store::testing::{Backend, TestDatabase};

        let db = TestDatabase::new(Backend::Sqlite);
        let store = db.open().await;
        let clock = Clock::pinned_now();
        let next = NextKey {
            algorithm: SigningAlgorithm::EdDSA,
            publish_ahead: DEFAULT_PUBLISH_AHEAD,
            not_before: None,
        };
        let published = publish_next(store.as_ref(), &clock, next, None).await;
        let Ok(Publication::Published {
            key,
            activate_at,
            at,
        }) = published
        else {
            panic!("the first next key is published: {published:?}");
        };
        assert_eq!(at, clock.now_utc());
        assert_eq!(activate_at, at + chrono_duration(DEFAULT_PUBLISH_AHEAD));
        assert_eq!(key.state, KeyState::Next);
        assert_eq!(key.algorithm, SigningAlgorithm::EdDSA);

        // A second publication, even one due later, finds the first and leaves it.
        let later = NextKey {
            not_before: Some(at + chrono::Duration::days(30)),
            ..next
        };
        match publish_next(store.as_ref(), &clock, later, None)
            .await
            .unwrap() // ok: a test; the unwrap is its assertion
        {
            Publication::Lost(existing) => assert_eq!(existing.kid, key.kid),
            Publication::Published { key, .. } => panic!("a second next key {}", key.kid),
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(90_061)), "1d1h1m1s");
        assert_eq!(human(Duration::from_secs(370)), "6m10s");
        assert_eq!(human(Duration::ZERO), "0s");
    }
}
