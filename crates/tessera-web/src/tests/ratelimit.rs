use std::time::Duration;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_burst_is_allowed_then_one_more_per_period() {
    let limiter = RateLimiter::new(Quota::new(3, 10 * SECOND));
    let t = 1_000_000;
    for _ in 0..3 {
        limiter.check(&"a", t).unwrap();
    }
    let refused = limiter.check(&"a", t).unwrap_err();
    assert_eq!(refused.retry_after, 10 * SECOND);
    assert_eq!(refused.retry_after_secs(), 10);
    // A refused event is not counted: after one period exactly one more is allowed.
    limiter.check(&"a", t + 9_999).unwrap_err();
    limiter.check(&"a", t + 10_000).unwrap();
    assert_eq!(
        limiter.check(&"a", t + 10_000).unwrap_err().retry_after,
        10 * SECOND
    );
    // Other keys are unaffected.
    limiter.check(&"b", t).unwrap();
}

#[test]
fn the_allowance_refills_completely_after_a_quiet_spell() {
    let limiter = RateLimiter::new(Quota::new(2, SECOND));
    let t = 5_000;
    limiter.check(&1, t).unwrap();
    limiter.check(&1, t).unwrap();
    limiter.check(&1, t).unwrap_err();
    limiter.check(&1, t + 60_000).unwrap();
    limiter.check(&1, t + 60_000).unwrap();
    limiter.check(&1, t + 60_000).unwrap_err();
}

#[test]
fn retry_after_rounds_up_to_a_whole_second() {
    let limited = Limited {
        retry_after: Duration::from_millis(1_001),
    };
    assert_eq!(limited.retry_after_secs(), 2);
    let limited = Limited {
        retry_after: Duration::from_millis(1),
    };
    assert_eq!(limited.retry_after_secs(), 1);
}

#[test]
fn a_flood_of_distinct_keys_is_bounded_and_never_refuses_a_new_key() {
    let limiter = RateLimiter::with_capacity(Quota::new(1, 60 * SECOND), 100);
    for i in 0..1_000 {
        limiter.check(&i, i64::from(i)).unwrap();
        assert!(limiter.len() <= 100, "{} keys held", limiter.len());
    }
    // The most recent key is still limited; a key never seen is not.
    limiter.check(&999, 999).unwrap_err();
    limiter.check(&5_000, 999).unwrap();
}

#[test]
fn acquired_slots_bound_concurrent_attempts_and_successes_are_refunded() {
    let limiter = RateLimiter::new(Quota::new(3, 10 * SECOND));
    let t = 0;
    // Three attempts in flight at once take the whole allowance; a fourth is refused
    // before any of them has finished.
    assert_eq!(limiter.acquire(&"k", t), Ok(false));
    assert_eq!(limiter.acquire(&"k", t), Ok(false));
    assert_eq!(limiter.acquire(&"k", t), Ok(true), "the third used it up");
    assert_eq!(
        limiter.acquire(&"k", t).unwrap_err().retry_after,
        10 * SECOND
    );
    // One of them succeeded: its slot comes back, once.
    limiter.refund(&"k", t);
    assert_eq!(limiter.acquire(&"k", t), Ok(true));
    limiter.acquire(&"k", t).unwrap_err();
    // Refunds never credit more than was taken.
    for _ in 0..10 {
        limiter.refund(&"other", t);
        limiter.refund(&"k", t);
    }
    for _ in 0..3 {
        limiter.acquire(&"k", t).unwrap();
    }
    limiter.acquire(&"k", t).unwrap_err();
    assert_eq!(limiter.acquire(&"other", t), Ok(false));
}

#[test]
fn a_period_under_a_millisecond_allows_more_than_a_thousand_a_second() {
    // 10,000 a second, with a burst of ten (a clock in milliseconds sees ten events in
    // the same instant): one second admits 10,000 events, not 1,000.
    let limiter = RateLimiter::new(Quota::new(10, Duration::from_micros(100)));
    let t = 1_000_000;
    let admitted = (0..1_000)
        .flat_map(|ms| (0..20).map(move |_| t + ms))
        .filter(|&at| limiter.check(&"a", at).is_ok())
        .count();
    assert_eq!(admitted, 10_000);
}

#[test]
fn a_state_kept_elsewhere_is_judged_as_the_limiter_would() {
    let quota = Quota::new(3, 10 * SECOND);
    let t = 1_000_000;
    // Never seen, or whole already: admitted.
    assert_eq!(quota.admits(0, t), Ok(()));
    // Two slots taken: one left.
    assert_eq!(quota.admits(t + 20_000, t), Ok(()));
    // All three taken: the next one waits a period.
    assert_eq!(
        quota.admits(t + 30_000, t).unwrap_err().retry_after,
        10 * SECOND
    );
    assert_eq!(quota.admits(t + 30_000, t + 10_000), Ok(()));
}
