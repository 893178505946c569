//! Time is an argument: services take `now` from a [`Clock`], which tests pin.

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
