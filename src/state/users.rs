//! The users UserInfo answers about, with their roles, kept for
//! `user_cache_ms` (1 s by default): UserInfo is called by relying parties
//! on every sign-in and often after, and reading the user and the roles was
//! its only database work.
//!
//! Changes made on this instance invalidate the entry at once (the admin
//! services, profile, e-mail and recovery changes, federation, `apply`,
//! erasure); changes made on another instance or by the CLI are seen within
//! the TTL. A disabled or deleted user's access tokens are refused by
//! UserInfo within that time everywhere, at once where the change was made.
//! A read that raced with an invalidation is not stored (a generation
//! number: an entry read before a change could otherwise be put back after
//! it). Bounded: at most [`CAPACITY`] users; full, it starts again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use crate::storage::users::LoadError;

pub const CAPACITY: usize = 10_000;

/// A user row and the user's roles (sorted), as read together.
#[derive(Debug)]
pub struct CachedUser {
    pub user: crate::storage::users::User,
    pub roles: Vec<String>,
}

/// A user as read (None: no such user), and when.
type Entry = (Option<Arc<CachedUser>>, Instant);

#[derive(Debug)]
pub struct UserCache {
    ttl: Duration,
    map: RwLock<HashMap<String, Entry>>,
    /// Bumped by every invalidation; a read started before one is not kept.
    generation: AtomicU64,
}

impl UserCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, map: RwLock::new(HashMap::new()), generation: AtomicU64::new(0) }
    }

    /// The user (None: no such user) from memory if fresh, else from the
    /// database. A damaged account is an error, and is not kept.
    pub async fn get(&self, db: &DatabaseConnection, user_id: &str) -> Result<Option<Arc<CachedUser>>, LoadError> {
        if let Ok(m) = self.map.read()
            && let Some((u, at)) = m.get(user_id)
            && at.elapsed() < self.ttl
        {
            return Ok(u.clone());
        }
        let started = self.generation.load(Ordering::SeqCst);
        let found = match crate::storage::users::by_id(db, user_id).await? {
            Some(u) => {
                let roles = crate::storage::users::roles(db, &u.id).await?;
                Some(Arc::new(CachedUser { user: u, roles }))
            }
            None => None,
        };
        if let Ok(mut m) = self.map.write()
            && self.generation.load(Ordering::SeqCst) == started
        {
            if m.len() >= CAPACITY {
                m.clear();
            }
            m.insert(user_id.to_owned(), (found.clone(), Instant::now()));
        }
        Ok(found)
    }

    /// Forgets every user (after a change of many, such as `apply`).
    pub fn clear(&self) {
        if let Ok(mut m) = self.map.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            m.clear();
        }
    }

    /// Forgets a user changed here.
    pub fn invalidate(&self, user_id: &str) {
        if let Ok(mut m) = self.map.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            m.remove(user_id);
        }
    }
}
