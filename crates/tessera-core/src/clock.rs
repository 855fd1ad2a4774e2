//! The time every component reads: the system clock in production, a pinned clock that
//! tests move by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// A source of the current time, cheap to clone and share.
///
/// [`Clock::system`] (the default) reads the operating system's clock. [`Clock::pinned`]
/// stands still until [`advance`](Clock::advance)d or [`set`](Clock::set); clones share
/// one pinned time, so a test can move the authorization server, the resource server and
/// the guard through days in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds since the Unix epoch, when pinned.
    pinned: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The operating system's clock.
    pub fn system() -> Self {
        Clock { pinned: None }
    }

    /// A clock that stands at `unix_millis` until moved.
    pub fn pinned(unix_millis: i64) -> Self {
        Clock {
            pinned: Some(Arc::new(AtomicI64::new(unix_millis))),
        }
    }

    /// A clock pinned at the current system time.
    pub fn pinned_now() -> Self {
        Self::pinned(Self::system().now_millis())
    }

    /// Whether this clock is pinned.
    pub fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> i64 {
        match &self.pinned {
            Some(millis) => millis.load(Ordering::Acquire),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// The current time as a UTC date-time, at millisecond precision: the one conversion
    /// from this clock to the `chrono` time the store and the servers' records use.
    pub fn now_utc(&self) -> DateTime<Utc> {
        millis_to_utc(self.now_millis())
    }

    /// Whole seconds since the Unix epoch.
    pub fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// Moves a pinned clock forward by `by`; the system clock ignores this.
    pub fn advance(&self, by: Duration) {
        if let Some(millis) = &self.pinned {
            let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            millis.fetch_add(by, Ordering::AcqRel);
        }
    }

    /// Puts a pinned clock at `unix_millis`; the system clock ignores this.
    pub fn set(&self, unix_millis: i64) {
        if let Some(millis) = &self.pinned {
            millis.store(unix_millis, Ordering::Release);
        }
    }
}

/// `unix_millis` as a UTC date-time; a value outside chrono's range (about ±262,000 years)
/// saturates at its end.
pub fn millis_to_utc(unix_millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(unix_millis).unwrap_or(if unix_millis < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_clock_moves_only_when_told_and_clones_share_it() {
        let clock = Clock::pinned(1_000_000);
        let other = clock.clone();
        assert_eq!(clock.now_millis(), 1_000_000);
        clock.advance(Duration::from_secs(90));
        assert_eq!(other.now_secs(), 1_090);
        other.set(5_500);
        assert_eq!(clock.now_secs(), 5);
    }

    #[test]
    fn the_clock_converts_to_utc_at_millisecond_precision() {
        let clock = Clock::pinned(1_700_000_000_123);
        assert_eq!(clock.now_utc().timestamp_millis(), 1_700_000_000_123);
        assert_eq!(millis_to_utc(i64::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(millis_to_utc(i64::MIN), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn the_system_clock_follows_the_operating_system() {
        let clock = Clock::system();
        let before = clock.now_millis();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_millis() - before < 3_600_000);
        assert!(before > 1_700_000_000_000);
    }
}
