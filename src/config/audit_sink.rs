//! Audit sinks (`[[audit_sinks]]` in the configuration file): where every
//! audit record goes besides the database, checked at load.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings};

/// One destination of the audit stream. Each record is delivered at least
/// once, in chain order; a sink's position survives restarts (database).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditSink {
    /// Its position is kept under this name: `[a-z0-9-]`, 1–32. Renaming a
    /// sink starts it again from the first record kept.
    pub name: String,
    pub kind: SinkKind,
    /// `file`: JSON lines appended to this file (of the instance that
    /// delivers; with several instances prefer a webhook).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `webhook`: each record is POSTed here (https; http only on loopback).
    #[serde(default)]
    pub url: Option<String>,
    /// `webhook`: the HMAC-SHA-256 key signing each body, from a file …
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// … or an environment variable (never inline).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Event types to send (`login.password`, or a prefix `login.*`); empty:
    /// all. Records left out still advance the sink's position.
    #[serde(default)]
    pub events: Vec<String>,
    /// `webhook`: attempts per record before it is counted as a dead letter
    /// and the stream moves on (backoff 0.5 s, doubling, at most 30 s).
    #[serde(default = "max_attempts")]
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Stdout,
    File,
    Webhook,
}

fn max_attempts() -> u32 {
    8
}

impl AuditSink {
    /// Does this sink take records of `event_type`?
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.is_empty()
            || self.events.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => p == event_type,
            })
    }

    /// The webhook's signing key, read now (a rotated file is picked up).
    pub fn secret(&self) -> Result<Vec<u8>, String> {
        let text = match (&self.secret_file, &self.secret_env) {
            (Some(f), _) => std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?,
            (None, Some(var)) => std::env::var(var).map_err(|_| format!("${var} is not set"))?,
            (None, None) => return Err("no secret_file or secret_env".into()),
        };
        let key = text.trim_end_matches(['\r', '\n']);
        if key.len() < 16 {
            return Err("the webhook secret must be at least 16 characters".into());
        }
        Ok(key.as_bytes().to_vec())
    }
}

impl Settings {
    pub(super) fn check_audit_sinks(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.audit_sinks {
            let ok_name = !s.name.is_empty()
                && s.name.len() <= 32
                && s.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok_name {
                return bad(format!("audit sink name {:?}: use 1–32 of a-z, 0-9 and -", s.name));
            }
            if !seen.insert(&s.name) {
                return bad(format!("audit sink {:?} is given twice", s.name));
            }
            let n = &s.name;
            match s.kind {
                SinkKind::Stdout => {}
                SinkKind::File if s.path.is_none() => return bad(format!("audit sink {n}: a file sink needs path")),
                SinkKind::File => {}
                SinkKind::Webhook => {
                    let Some(raw) = &s.url else { return bad(format!("audit sink {n}: a webhook needs url")) };
                    let url = url::Url::parse(raw)
                        .map_err(|e| ConfigError::Invalid(format!("audit sink {n}: url {raw:?}: {e}")))?;
                    if url.scheme() != "https" && !(url.scheme() == "http" && crate::domain::is_loopback(&url)) {
                        return bad(format!("audit sink {n}: the url must be https (http only on loopback)"));
                    }
                    if s.secret_file.is_some() == s.secret_env.is_some() {
                        return bad(format!("audit sink {n}: set one of secret_file or secret_env"));
                    }
                    s.secret().map_err(|e| ConfigError::Invalid(format!("audit sink {n}: {e}")))?;
                    if !(1..=100).contains(&s.max_attempts) {
                        return bad(format!("audit sink {n}: max_attempts must be between 1 and 100"));
                    }
                }
            }
        }
        Ok(())
    }
}
