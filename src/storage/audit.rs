//! The audit log: one row per security event, in the same database as the data,
//! so that a change and its audit record commit together.
//!
//! Never put a secret in an event: `detail` holds names, ids and reasons only.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};
use serde_json::Value;

use super::entities::audit_event;

/// An event to record. Build it with [`AuditEvent::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event_type: &'static str,
    pub outcome: &'static str,
    pub actor: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Value,
}

impl AuditEvent {
    pub fn new(event_type: &'static str, outcome: &'static str) -> Self {
        Self {
            event_type,
            outcome,
            actor: None,
            user_id: None,
            client_id: None,
            ip: None,
            user_agent: None,
            detail: Value::Object(Default::default()),
        }
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    pub fn source(mut self, ip: Option<String>, user_agent: Option<String>) -> Self {
        self.ip = ip;
        // Bounded: a user agent is attacker-controlled.
        self.user_agent = user_agent.map(|ua| ua.chars().take(512).collect());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Writes the event on `conn` (a connection or the caller's transaction).
pub async fn record<C: ConnectionTrait>(conn: &C, event: AuditEvent, now: DateTime<Utc>) -> Result<(), DbErr> {
    audit_event::ActiveModel {
        at: Set(now),
        event_type: Set(event.event_type.to_owned()),
        outcome: Set(event.outcome.to_owned()),
        actor: Set(event.actor),
        user_id: Set(event.user_id),
        client_id: Set(event.client_id),
        ip: Set(event.ip),
        user_agent: Set(event.user_agent),
        detail: Set(event.detail.to_string()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}
