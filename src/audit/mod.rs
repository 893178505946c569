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
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), format!("{t}.{body}").as_bytes());
    crate::crypto::hex(tag.as_ref())
}

/// This instance's name for leases: host and listening address, then a
/// random part per process. Give replicas distinct host names (or
/// addresses): the prefix is how a restarted process takes its own
/// instance's lease back at once.
fn instance_prefix(state: &AppState) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{}:{}:", host.trim(), state.settings.bind)
}

/// Starts a deliverer for every configured sink.
pub fn spawn(state: &AppState, every: Duration) {
    let prefix = instance_prefix(state);
    let holder = format!("{prefix}{}", crate::crypto::random_token(9).unwrap_or_else(|_| "0".into()));
    for sink in state.settings.audit_sinks.clone() {
        state.metrics.audit_stream(&sink.name, 0, 0);
        let state = state.clone();
        let (holder, prefix) = (holder.clone(), prefix.clone());
        tokio::spawn(async move {
            let mut d = Deliverer { sink, holder, prefix, file_checked: false };
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = d.round(&state).await {
                    // Read the file's tail again: the position may not have
                    // moved past what was written.
                    d.file_checked = false;
                    tracing::warn!(sink = %d.sink.name, error = %e, "audit stream: delivery stopped; retrying");
                }
            }
        });
    }
}

struct Deliverer {
    sink: AuditSink,
    holder: String,
    /// This host and address: leases of an earlier process of it are taken over.
    prefix: String,
    /// A file sink's tail was read (after a crash it may be ahead of the
    /// stored position, or end in a torn line).
    file_checked: bool,
}

const LEASE_LOST: &str = "the lease went to another instance";

impl Deliverer {
    /// Stores the position (and renews the lease); an error when the lease
    /// was lost — the caller stops at once.
    async fn advance(&self, state: &AppState, seq: i64, dead: i64) -> Result<(), String> {
        let until = state.clock.now().timestamp_millis() + LEASE_MS;
        match audit_sinks::advance(&state.db, &self.sink.name, &self.holder, seq, dead, until).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(LEASE_LOST.into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// One round: take the lease, deliver what is sealed after the stored
    /// position, store the new position.
    async fn round(&mut self, state: &AppState) -> Result<(), String> {
        let db = &state.db;
        let name = &self.sink.name;
        let err = |e: sea_orm::DbErr| e.to_string();
        audit_sinks::ensure(db, name).await.map_err(err)?;
        loop {
            let now = state.clock.now().timestamp_millis();
            let lease = audit_sinks::lease(db, name, &self.holder, &self.prefix, now, now + LEASE_MS);
            let Some(row) = lease.await.map_err(err)? else {
                self.file_checked = false;
                return Ok(());
            };
            let mut position = row.delivered_seq;
            if self.sink.kind == SinkKind::File && !self.file_checked {
                let on_file = self.file_tail(state).await?;
                if on_file > position {
                    self.advance(state, on_file, 0).await?;
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
                    // A secret that cannot be read stops the stream (it
                    // resumes once it can): records are not given up for it.
                    let key = self.sink.secret()?;
                    // Position stored after each record: a crash repeats one at most.
                    for r in &wanted {
                        let dead = i64::from(!self.post(state, r, &key).await?);
                        self.advance(state, r.seq.unwrap_or_default(), dead).await?;
                    }
                }
            }
            self.advance(state, last, 0).await?;
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
    /// cutting off a torn last line left by a crash mid-write. Taken only
    /// when the database holds that record with the same hash (a file from
    /// another database, or edited, does not move the position).
    async fn file_tail(&self, state: &AppState) -> Result<i64, String> {
        let Some((seq, hash)) = self.read_tail().map_err(|e| e.to_string())? else { return Ok(0) };
        let held = crate::storage::audit_chain::holds(&state.db, seq, &hash).await.map_err(|e| e.to_string())?;
        if held == Some(true) {
            Ok(seq)
        } else {
            tracing::warn!(sink = %self.sink.name, seq, "audit file sink: its last line is not this database's record; not resuming from it");
            Ok(0)
        }
    }

    fn read_tail(&self) -> std::io::Result<Option<(i64, String)>> {
        let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(self.path()?) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let start = len.saturating_sub(1 << 20);
        f.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail)?;
        let Some(newline) = tail.iter().rposition(|&b| b == b'\n') else {
            if start > 0 {
                return Err(std::io::Error::other("the file's last line is longer than 1 MiB; not touching it"));
            }
            // Only a torn first line.
            f.set_len(0)?;
            f.sync_data()?;
            return Ok(None);
        };
        let whole = newline + 1;
        if whole < tail.len() {
            f.set_len(start + whole as u64)?;
            f.sync_data()?;
        }
        let last = tail[..newline].rsplit(|&b| b == b'\n').next().unwrap_or_default();
        let v: Option<Value> = serde_json::from_slice(last).ok();
        Ok(v.and_then(|v| Some((v["seq"].as_i64()?, v["hash"].as_str()?.to_owned()))))
    }

    /// POSTs one record, retrying with backoff (the lease renewed between
    /// attempts); `Ok(false)` once every attempt failed, an error when the
    /// lease was lost meanwhile.
    async fn post(&self, state: &AppState, r: &audit_event::Model, key: &[u8]) -> Result<bool, String> {
        let url = self.sink.url.as_deref().ok_or("a webhook without a url")?;
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
                .header("portcullis-signature", format!("t={t},v1={}", signature(key, t, &body)))
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => return Ok(true),
                Ok(resp) => {
                    tracing::warn!(sink = %self.sink.name, seq, attempt, status = %resp.status(), "audit webhook refused")
                }
                // Without the URL: it may carry a token in its query.
                Err(e) => {
                    tracing::warn!(sink = %self.sink.name, seq, attempt, error = %e.without_url(), "audit webhook unreachable")
                }
            }
            if attempt < self.sink.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                // Still ours? (Renews it; the position stays where it was.)
                self.advance(state, seq - 1, 0).await?;
            }
        }
        tracing::error!(sink = %self.sink.name, seq, "audit webhook: giving up on the record (dead letter)");
        Ok(false)
    }
}
