//! In-memory caches of the token hot paths, shared by every request of one
//! instance and kept in step with the others through the database:
//!
//! - [`ClientCache`]: a client and its roles, for `client_cache_ms`; changes
//!   made on this instance invalidate at once, changes made elsewhere (another
//!   instance, the CLI) are seen within the TTL.
//! - [`RevocationList`]: the revoked access-token ids. A revocation made here
//!   is visible at once; revocations made by other instances are pulled every
//!   `revocation_sync_ms` (an indexed range query on `revoked_ms`), so the
//!   introspection of a JWT needs no database round-trip.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::storage::clients::{self, Client, LoadError};
use crate::storage::entities::revoked_token;

/// A client metadata document as fetched (or why it was refused), and until when.
type Document = (Result<Arc<Client>, String>, Instant);

#[derive(Debug)]
pub struct ClientCache {
    ttl: Duration,
    map: RwLock<HashMap<String, (Arc<Client>, Instant)>>,
    /// Clients named by their metadata documents (`oauth::cimd`), as long as
    /// their `Cache-Control` allows; bounded.
    documents: RwLock<HashMap<String, Document>>,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, map: RwLock::new(HashMap::new()), documents: RwLock::new(HashMap::new()) }
    }

    /// A document client (or its refusal) while it may be reused.
    pub fn document(&self, url: &str) -> Option<Result<Arc<Client>, String>> {
        let m = self.documents.read().ok()?;
        m.get(url).filter(|(_, until)| *until > Instant::now()).map(|(c, _)| c.clone())
    }

    pub fn put_document(&self, url: &str, entry: Result<Arc<Client>, String>, ttl: Duration) {
        if let Ok(mut m) = self.documents.write() {
            if m.len() >= 1_000 {
                m.retain(|_, (_, until)| *until > Instant::now());
                if m.len() >= 1_000 {
                    m.clear();
                }
            }
            m.insert(url.to_owned(), (entry, Instant::now() + ttl));
        }
    }

    /// The client (parsed, with its roles), from memory if fresh. A damaged
    /// registration is an error here as everywhere (and is not cached).
    pub async fn get(&self, db: &DatabaseConnection, client_id: &str) -> Result<Option<Arc<Client>>, LoadError> {
        if let Ok(m) = self.map.read()
            && let Some((c, at)) = m.get(client_id)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(c.clone()));
        }
        let found = clients::find(db, client_id).await;
        let Ok(Some(c)) = found else {
            self.invalidate(client_id);
            return found.map(|_| None);
        };
        let entry = Arc::new(c);
        if let Ok(mut m) = self.map.write() {
            if m.len() > 10_000 {
                m.clear(); // bounded: unknown ids must not grow it
            }
            m.insert(client_id.to_owned(), (entry.clone(), Instant::now()));
        }
        Ok(Some(entry))
    }

    pub fn invalidate(&self, client_id: &str) {
        if let Ok(mut m) = self.map.write() {
            m.remove(client_id);
        }
    }
}

#[derive(Debug)]
pub struct RevocationList {
    sync_every: Duration,
    jtis: RwLock<HashSet<String>>,
    /// (last sync instant, high-water mark of `revoked_ms` seen)
    sync: Mutex<(Option<Instant>, i64)>,
}

impl RevocationList {
    pub fn new(sync_every: Duration) -> Self {
        Self { sync_every, jtis: RwLock::new(HashSet::new()), sync: Mutex::new((None, 0)) }
    }

    /// Records a revocation made by this instance.
    pub fn add(&self, jti: &str) {
        if let Ok(mut s) = self.jtis.write() {
            s.insert(jti.to_owned());
        }
    }

    /// Whether a token id is revoked (pulling others' revocations if due).
    pub async fn contains(&self, db: &DatabaseConnection, jti: &str, now_ms: i64) -> Result<bool, DbErr> {
        let due = {
            let s = self.sync.lock().map_err(|_| DbErr::Custom("revocation list lock".into()))?;
            s.0.is_none_or(|t| t.elapsed() >= self.sync_every)
        };
        if due {
            self.pull(db, now_ms).await?;
        }
        Ok(self.jtis.read().map(|s| s.contains(jti)).unwrap_or(true))
    }

    async fn pull(&self, db: &DatabaseConnection, now_ms: i64) -> Result<(), DbErr> {
        let since = self.sync.lock().map(|s| s.1).unwrap_or(0);
        // A small overlap covers rows committed slightly out of order.
        let rows = revoked_token::Entity::find()
            .filter(revoked_token::Column::RevokedMs.gte(since - 5_000))
            .filter(revoked_token::Column::ExpiresMs.gt(now_ms))
            .all(db)
            .await?;
        let high = rows.iter().map(|r| r.revoked_ms).max().unwrap_or(since).max(since);
        if let Ok(mut s) = self.jtis.write() {
            for r in rows {
                s.insert(r.jti);
            }
            if s.len() > 200_000 {
                // Expired entries are harmless but should not pile up: start
                // again from the live rows next time.
                s.clear();
                if let Ok(mut g) = self.sync.lock() {
                    *g = (None, 0);
                }
                return Ok(());
            }
        }
        if let Ok(mut g) = self.sync.lock() {
            *g = (Some(Instant::now()), high);
        }
        Ok(())
    }
}

/// Failed client authentications per source address, in fixed windows, kept
/// in memory (a per-instance abuse limit: it spares the database a lookup for
/// every guessed client id; the 256-bit secrets are not guessable anyway).
/// An address over the limit gets 429 until its window ends; others are not
/// affected.
#[derive(Debug, Default)]
pub struct FailureThrottle {
    map: RwLock<HashMap<std::net::IpAddr, (u32, i64)>>,
}

impl FailureThrottle {
    /// Whether `ip` is over `max` failures in the window that started at most
    /// `window_ms` before `now_ms`.
    pub fn blocked(&self, ip: std::net::IpAddr, max: u32, window_ms: i64, now_ms: i64) -> bool {
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(&ip).copied())
            .is_some_and(|(n, start)| n >= max && now_ms - start < window_ms)
    }

    /// Counts one failure.
    pub fn failed(&self, ip: std::net::IpAddr, window_ms: i64, now_ms: i64) {
        if let Ok(mut m) = self.map.write() {
            if m.len() > 100_000 {
                // Bounded: stale windows go first, and if every entry is fresh
                // (a flood from many addresses) the map starts over.
                m.retain(|_, (_, start)| now_ms - *start < window_ms);
                if m.len() > 100_000 {
                    m.clear();
                }
            }
            let e = m.entry(ip).or_insert((0, now_ms));
            if now_ms - e.1 >= window_ms {
                *e = (0, now_ms);
            }
            e.0 = e.0.saturating_add(1);
        }
    }
}
