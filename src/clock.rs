//! Time is an argument: services take `now` from a [`Clock`], which tests pin.
//!
//! One request sees one instant: the HTTP edge runs each request inside
//! [`request_scope`], and every [`Clock::now`] on that request's task returns
//! the instant read when the request began. So an operation cannot straddle
//! two readings (a token's `iat` and the session's `auth_time`, a code's
//! expiry and the audit record of its issue), however many services it
//! passes through. The instant is read once the request's body has arrived
//! (`web::limits`), so a slow sender does not stretch it. Work spawned onto
//! other tasks (mail, background jobs) reads the clock itself, and so does
//! [`Clock::fresh`], for times other instances order by.

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// A settable clock for tests.
    Fixed(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self::Fixed(Arc::new(Mutex::new(at)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        if let Ok(at) = REQUEST_NOW.try_with(|at| *at) {
            return at;
        }
        self.fresh()
    }

    /// The clock itself, ignoring the request's instant: for a time other
    /// instances order rows by (the revocation list's high-water mark must
    /// not lag the commit by the length of the request that wrote it).
    pub fn fresh(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Fixed(t) => t.lock().map_or_else(|p| *p.into_inner(), |g| *g),
        }
    }

    /// Moves a fixed clock forward (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Self::Fixed(t) = self {
            match t.lock() {
                Ok(mut g) => *g += by,
                Err(p) => *p.into_inner() += by,
            }
        }
    }
}

tokio::task_local! {
    static REQUEST_NOW: DateTime<Utc>;
}

/// Runs `fut` (one request) with the clock read once: inside it,
/// [`Clock::now`] returns that instant.
pub async fn request_scope<F: Future>(clock: &Clock, fut: F) -> F::Output {
    let at = clock.fresh();
    REQUEST_NOW.scope(at, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_reads_one_instant_and_nothing_else_does() {
        let clock = Clock::fixed(Utc::now());
        let start = clock.now();
        let seen = request_scope(&clock, async {
            let first = clock.now();
            clock.advance(Duration::seconds(30));
            // Another task (a spawned mail, a background job) reads the clock.
            let elsewhere = tokio::spawn({
                let clock = clock.clone();
                async move { clock.now() }
            })
            .await
            .unwrap();
            (first, clock.now(), elsewhere)
        })
        .await;
        assert_eq!(seen.0, start);
        assert_eq!(seen.1, start, "the same instant all through the request");
        assert_eq!(seen.2, start + Duration::seconds(30), "other tasks read the clock");
        assert_eq!(clock.now(), start + Duration::seconds(30), "after the request, the clock again");
    }
}
