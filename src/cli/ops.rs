//! Operations commands: `audit verify`, `audit resend`.

use super::CliError;
use super::output::Output;
use crate::state::AppState;

/// `audit verify`: seals what the servers have not sealed yet (as they
/// would), then recomputes the chain.
pub(super) async fn audit_verify(state: &AppState, out: &Output, expect: &[String]) -> Result<(), CliError> {
    use crate::storage::audit_chain::{self, Verdict};
    let db_err = |e: sea_orm::DbErr| CliError::Input(format!("database error: {e}"));
    let mut anchors = Vec::new();
    for e in expect {
        let parsed = e.split_once(':').and_then(|(s, h)| Some((s.parse::<i64>().ok()?, h.to_owned())));
        anchors.push(parsed.ok_or_else(|| CliError::Input(format!("--expect {e:?}: use SEQ:HASH")))?);
    }
    let key = state.master_key.audit_key();
    audit_chain::seal(&state.db, key).await.map_err(db_err)?;
    let verdict = audit_chain::verify(&state.db, key).await.map_err(db_err)?;
    if matches!(verdict, Verdict::Intact { .. }) {
        for (seq, hash) in &anchors {
            match audit_chain::holds(&state.db, *seq, hash).await.map_err(db_err)? {
                Some(true) => {}
                Some(false) => {
                    return Err(CliError::Input(format!(
                        "the audit chain does not hold the expected head {seq}:{hash}: it was rewritten or cut off"
                    )));
                }
                None => out.message(&format!("record {seq} was removed by retention; --expect cannot check it")),
            }
        }
    }
    out.audit_verdict(&verdict);
    match verdict {
        Verdict::Intact { .. } => Ok(()),
        Verdict::Broken { seq, id, reason } => Err(CliError::Input(format!(
            "the audit chain is broken at record {seq}{}: {reason}",
            id.map(|i| format!(" (row id {i})")).unwrap_or_default()
        ))),
    }
}

/// `audit resend --sink NAME --from SEQ`: the sink's position goes back so
/// records from SEQ are delivered again (at least once, in order). Not for
/// a file sink: its file already holds every record it was given (and its
/// last line would move the position forward again).
pub(super) async fn audit_resend(
    state: &AppState,
    actor: &crate::admin::Actor,
    out: &Output,
    sink: &str,
    from: i64,
) -> Result<(), CliError> {
    use crate::config::SinkKind;
    use crate::storage::{audit_chain, audit_sinks};
    let db_err = |e: sea_orm::DbErr| CliError::Input(format!("database error: {e}"));
    let Some(configured) = state.settings.audit_sinks.iter().find(|s| s.name == sink) else {
        return Err(CliError::Input(format!("no audit sink named {sink:?} is configured")));
    };
    if configured.kind == SinkKind::File {
        return Err(CliError::Input(format!(
            "{sink} is a file sink: it holds every record it was given; export records with the admin audit export instead"
        )));
    }
    let head = audit_chain::head(&state.db).await.map_err(db_err)?;
    if from <= head.pruned_through || from > head.seq {
        return Err(CliError::Input(format!(
            "--from {from}: the records kept are {}–{}",
            head.pruned_through + 1,
            head.seq
        )));
    }
    if !audit_sinks::rewind(&state.db, sink, from).await.map_err(db_err)? {
        return Err(CliError::Input(format!("{sink} has not delivered record {from} yet: nothing to send again")));
    }
    let event = crate::storage::AuditEvent::new("audit.resend", "success")
        .actor(&actor.name)
        .detail(serde_json::json!({ "sink": sink, "from": from }));
    crate::storage::record_audit(&state.db, event, state.clock.now()).await.map_err(db_err)?;
    out.message(&format!("{sink} delivers again from record {from} (a running server picks it up within a second)"));
    Ok(())
}
