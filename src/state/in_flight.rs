//! Requests in progress per source address, counted by `web::limits`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Requests in progress per source address (the throttling key: IPv6 by /64).
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashMap<String, u32>>);

/// One admitted request; the count goes down when it is dropped.
pub struct Admitted {
    map: Arc<InFlight>,
    key: String,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut m = match self.map.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

impl InFlight {
    pub fn admit(self: &Arc<Self>, key: String, max: u32) -> Option<Admitted> {
        let mut m = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Admitted { map: self.clone(), key })
    }
}
