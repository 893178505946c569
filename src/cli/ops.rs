//! Operations commands: `audit verify`.

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
