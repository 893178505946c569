//! The audit stream: every sealed audit record, in chain order and at least
//! once, to each configured sink (`[[audit_sinks]]`): JSON lines on stdout
//! or appended to a file, or an HMAC-signed POST to a webhook.
//!
//! Every instance runs a deliverer per sink; a lease in the database lets one
//! deliver at a time, and its position (the last sequence number delivered)
//! is stored only after the sink has the record — so a crash repeats at most
//! what was in flight, and a file sink not even that: the file's last whole
//! line says how far it got (a torn last line is cut off first).
//!
//! The record format (`schema` `portcullis.audit.v1`) is documented in
//! docs/AUDIT.md; fields are only ever added to it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{AuditSink, SinkKind};
use crate::state::AppState;
use crate::storage::audit_sinks;
use crate::storage::entities::audit_event;

/// The schema name every streamed record carries.
pub const SCHEMA: &str = "portcullis.audit.v1";
const LEASE_MS: i64 = 30_000;
const BATCH: u64 = 200;

/// One record as streamed: every column, the detail as JSON, and its place
/// in the hash chain (so a copy elsewhere can check the chain and notice a
/// database rewritten behind it).
pub fn to_json(r: &audit_event::Model) -> Value {
    json!({
        "schema": SCHEMA,
        "seq": r.seq,
        "at": r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "event_type": r.event_type,
        "outcome": r.outcome,
        "actor": r.actor,
        "user_id": r.user_id,
        "client_id": r.client_id,
        "ip": r.ip,
        "user_agent": r.user_agent,
        "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or_else(|_| Value::String(r.detail.clone())),
        "content_hash": r.content_hash,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
}

/// `HMAC-SHA-256(key, "<t>.<body>")` in hex: the webhook's signature over a
/// timestamp and the body (a receiver refuses old timestamps: no replay).
pub fn signature(key: &[u8], t: i64, body: &str) -> String {
    use aws_lc_rs::hmac;
    use std::fmt::Write;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), format!("{t}.{body}").as_bytes());
    tag.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The name this instance holds leases under: host and listening address,
/// so a restarted instance takes its own lease back at once.
fn holder(state: &AppState) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{}:{}", host.trim(), state.settings.bind)
}

/// Starts a deliverer for every configured sink.
pub fn spawn(state: &AppState, every: Duration) {
    let holder = holder(state);
    for sink in state.settings.audit_sinks.clone() {
        state.metrics.audit_stream(&sink.name, 0, 0);
        let state = state.clone();
        let holder = holder.clone();
        tokio::spawn(async move {
            let mut d = Deliverer { sink, holder, file_checked: false };
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = d.round(&state).await {
                    tracing::warn!(sink = %d.sink.name, error = %e, "audit stream: delivery failed; retrying");
                }
            }
        });
    }
}

struct Deliverer {
    sink: AuditSink,
    holder: String,
    /// A file sink's tail was read (after a crash it may be ahead of the
    /// stored position, or end in a torn line).
    file_checked: bool,
}

impl Deliverer {
    /// One round: take the lease, deliver what is sealed after the stored
    /// position, store the new position.
    async fn round(&mut self, state: &AppState) -> Result<(), String> {
        let db = &state.db;
        let name = &self.sink.name;
        let err = |e: sea_orm::DbErr| e.to_string();
        audit_sinks::ensure(db, name).await.map_err(err)?;
        loop {
            let now = state.clock.now().timestamp_millis();
            let Some(row) = audit_sinks::lease(db, name, &self.holder, now, now + LEASE_MS).await.map_err(err)? else {
                self.file_checked = false;
                return Ok(());
            };
            let mut position = row.delivered_seq;
            if self.sink.kind == SinkKind::File && !self.file_checked {
                let on_file = self.file_tail().map_err(|e| e.to_string())?;
                if on_file > position {
                    audit_sinks::advance(db, name, &self.holder, on_file, 0).await.map_err(err)?;
                    position = on_file;
                }
                self.file_checked = true;
            }
            let head = crate::storage::audit_chain::head(db).await.map_err(err)?;
            state.metrics.audit_stream(name, head.seq - position, row.dead_letters);
            let records = audit_sinks::after(db, position, BATCH).await.map_err(err)?;
            let Some(last) = records.last().and_then(|r| r.seq) else { return Ok(()) };
            let wanted: Vec<&audit_event::Model> = records.iter().filter(|r| self.sink.wants(&r.event_type)).collect();
            match self.sink.kind {
                SinkKind::Stdout => {
                    let mut out = std::io::stdout().lock();
                    for r in &wanted {
                        writeln!(out, "{}", to_json(r)).map_err(|e| e.to_string())?;
                    }
                    out.flush().map_err(|e| e.to_string())?;
                }
                SinkKind::File => self.append(&wanted).map_err(|e| e.to_string())?,
                SinkKind::Webhook => {
                    // Position stored after each record: a crash repeats one at most.
                    for r in &wanted {
                        let dead = i64::from(!self.post(state, r).await);
                        let seq = r.seq.unwrap_or_default();
                        audit_sinks::advance(db, name, &self.holder, seq, dead).await.map_err(err)?;
                    }
                }
            }
            audit_sinks::advance(db, name, &self.holder, last, 0).await.map_err(err)?;
            if (records.len() as u64) < BATCH {
                let head = crate::storage::audit_chain::head(db).await.map_err(err)?;
                state.metrics.audit_stream(name, head.seq - last, row.dead_letters);
                return Ok(());
            }
        }
    }

    fn path(&self) -> std::io::Result<&std::path::Path> {
        self.sink.path.as_deref().ok_or_else(|| std::io::Error::other("a file sink without a path"))
    }

    /// Appends whole lines and syncs them to disk before the position moves.
    fn append(&self, records: &[&audit_event::Model]) -> std::io::Result<()> {
        let mut text = String::new();
        for r in records {
            text.push_str(&to_json(r).to_string());
            text.push('\n');
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o640);
        }
        let mut f = opts.open(self.path()?)?;
        f.write_all(text.as_bytes())?;
        f.sync_data()
    }

    /// The sequence number of the file's last whole line (0: none), after
    /// cutting off a torn last line left by a crash mid-write.
    fn file_tail(&self) -> std::io::Result<i64> {
        let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(self.path()?) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let start = len.saturating_sub(1 << 20);
        f.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail)?;
        let whole = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < tail.len() {
            f.set_len(start + whole as u64)?;
            f.sync_data()?;
            tail.truncate(whole);
        }
        let last = tail[..whole.saturating_sub(1)].rsplit(|&b| b == b'\n').next().unwrap_or_default();
        Ok(serde_json::from_slice::<Value>(last).ok().and_then(|v| v["seq"].as_i64()).unwrap_or(0))
    }

    /// POSTs one record, retrying with backoff; false once every attempt failed.
    async fn post(&self, state: &AppState, r: &audit_event::Model) -> bool {
        let (Some(url), Ok(key)) = (self.sink.url.as_deref(), self.sink.secret()) else {
            tracing::warn!(sink = %self.sink.name, "audit stream: webhook url or secret unavailable");
            return false;
        };
        let body = to_json(r).to_string();
        let seq = r.seq.unwrap_or_default();
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=self.sink.max_attempts {
            let t = state.clock.now().timestamp();
            let sent = state
                .upstream_http
                .post(url)
                .header("content-type", "application/json")
                .header("portcullis-audit-seq", seq.to_string())
                .header("portcullis-signature", format!("t={t},v1={}", signature(&key, t, &body)))
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => return true,
                Ok(resp) => {
                    tracing::warn!(sink = %self.sink.name, seq, attempt, status = %resp.status(), "audit webhook refused")
                }
                Err(e) => tracing::warn!(sink = %self.sink.name, seq, attempt, error = %e, "audit webhook unreachable"),
            }
            if attempt < self.sink.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                let now = state.clock.now().timestamp_millis();
                let _ = audit_sinks::lease(&state.db, &self.sink.name, &self.holder, now, now + LEASE_MS).await;
            }
        }
        tracing::error!(sink = %self.sink.name, seq, "audit webhook: giving up on the record (dead letter)");
        false
    }
}
