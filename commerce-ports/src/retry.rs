//! [`RetryPolicy`]: how often and how patiently an adapter retries a provider call. Shared by the HTTP
//! adapters so every provider retries the same way; every retry reuses the call's idempotency key.

use std::time::Duration;

/// How often and how patiently a call is retried. Every retry reuses the call's idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff_base: Duration,
    /// Longest wait between attempts (also caps a `Retry-After` hint).
    pub backoff_cap: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, 500 ms then 1 s, at most 5 s (roughly the providers' own clients' policy).
    fn default() -> RetryPolicy {
        RetryPolicy { max_attempts: 3, backoff_base: Duration::from_millis(500), backoff_cap: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// A policy of `max_attempts` attempts (at least 1) with the given backoff.
    pub fn new(max_attempts: u32, backoff_base: Duration, backoff_cap: Duration) -> RetryPolicy {
        RetryPolicy { max_attempts: max_attempts.max(1), backoff_base, backoff_cap }
    }

    /// The default backoff with `retries` retries after the first attempt (`max_attempts = retries + 1`,
    /// saturating). What the adapter factories' `max_retries` parameter means.
    pub fn with_max_retries(retries: u32) -> RetryPolicy {
        RetryPolicy { max_attempts: retries.saturating_add(1), ..RetryPolicy::default() }
    }

    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy::new(1, Duration::ZERO, Duration::ZERO)
    }

    /// The wait before retry number `retry` (1-based): `base * 2^(retry-1)`, at least `hint`, at most the cap.
    pub fn backoff(&self, retry: u32, hint: Option<Duration>) -> Duration {
        let factor = 1_u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff_base.saturating_mul(factor).max(hint.unwrap_or(Duration::ZERO)).min(self.backoff_cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_honours_hints_and_is_capped() {
        let p = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(p.backoff(1, None), Duration::from_millis(100));
        assert_eq!(p.backoff(3, None), Duration::from_millis(400));
        assert_eq!(p.backoff(2, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(p.backoff(60, None), Duration::from_secs(1));
        assert_eq!(p.backoff(2, Some(Duration::from_secs(9))), Duration::from_secs(1));
        assert_eq!(RetryPolicy::new(0, Duration::ZERO, Duration::ZERO).max_attempts, 1);
        assert_eq!(RetryPolicy::none().max_attempts, 1);
        assert_eq!(p.backoff(2, None), Duration::from_millis(200));
        assert_eq!(p.backoff(5, None), Duration::from_secs(1));
        assert_eq!(p.backoff(40, None), Duration::from_secs(1));
        assert_eq!(p.backoff(1, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(p.backoff(1, Some(Duration::from_secs(60))), Duration::from_secs(1));
    }

    #[test]
    fn with_max_retries_keeps_the_default_backoff() {
        let default = RetryPolicy::default();
        for (retries, attempts) in [(0, 1), (2, 3), (10, 11), (u32::MAX, u32::MAX)] {
            let p = RetryPolicy::with_max_retries(retries);
            assert_eq!(p, RetryPolicy::new(attempts, default.backoff_base, default.backoff_cap), "{retries}");
        }
        assert_eq!(RetryPolicy::with_max_retries(2), default);
    }
}
