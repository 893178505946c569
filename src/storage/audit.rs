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

/// Which events to read — one filter for the admin API, the admin pages and
/// the JSON-lines export, so the three cannot disagree.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub event_type: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    /// The matching events, newest first. Readers go through
    /// `admin::audit_events`, which asks for `audit:read` first.
    pub(crate) fn select(&self) -> sea_orm::Select<audit_event::Entity> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let mut find = audit_event::Entity::find().order_by_desc(audit_event::Column::Id);
        if let Some(u) = &self.user_id {
            find = find.filter(audit_event::Column::UserId.eq(u.as_str()));
        }
        if let Some(c) = &self.client_id {
            find = find.filter(audit_event::Column::ClientId.eq(c.as_str()));
        }
        if let Some(t) = &self.event_type {
            find = find.filter(audit_event::Column::EventType.eq(t.as_str()));
        }
        if let Some(o) = &self.outcome {
            find = find.filter(audit_event::Column::Outcome.eq(o.as_str()));
        }
        if let Some(t) = self.since {
            find = find.filter(audit_event::Column::At.gte(t));
        }
        if let Some(t) = self.until {
            find = find.filter(audit_event::Column::At.lt(t));
        }
        find
    }
}

/// The event types recorded so far, for a filter's list.
pub async fn event_types<C: ConnectionTrait>(conn: &C) -> Result<Vec<String>, DbErr> {
    use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
    audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::EventType)
        .distinct()
        .order_by_asc(audit_event::Column::EventType)
        .limit(500)
        .into_tuple::<String>()
        .all(conn)
        .await
}
