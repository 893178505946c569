//! The audit log's hash chain (issue #19, part 3; ASVS V16.4.x): every
//! record sealed once, in one gapless sequence, also when records are
//! written, sealed and verified concurrently; `portcullis audit verify`
//! names the first record edited, deleted, forged or cut off; retention is
//! told apart from deletion and never removes a tampered record; the head is
//! exported in /metrics and can be checked against a kept copy.

use portcullis::storage::audit_chain::{self, Verdict};
use portcullis::storage::entities::{audit_chain as chain_row, audit_event};
use portcullis::storage::{AuditEvent, record_audit};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_clean_failure, spawn_app, stderr, stdout};

async fn write_events(app: &TestApp, n: usize) {
    for i in 0..n {
        let e = AuditEvent::new("test.event", "success").user(format!("u{i}")).detail(json!({ "n": i }));
        record_audit(&app.state.db, e, app.state.clock.now()).await.unwrap();
    }
}

async fn by_seq(app: &TestApp, seq: i64) -> audit_event::Model {
    audit_event::Entity::find().filter(audit_event::Column::Seq.eq(seq)).one(&app.state.db).await.unwrap().unwrap()
}

async fn set(app: &TestApp, seq: i64, col: audit_event::Column, v: impl Into<sea_orm::Value>) {
    audit_event::Entity::update_many()
        .col_expr(col, Expr::value(v))
        .filter(audit_event::Column::Seq.eq(seq))
        .exec(&app.state.db)
        .await
        .unwrap();
}

async fn verify(app: &TestApp) -> Verdict {
    audit_chain::verify(&app.state.db, app.state.master_key.audit_key()).await.unwrap()
}

async fn seal(app: &TestApp) {
    audit_chain::seal(&app.state.db, app.state.master_key.audit_key()).await.unwrap();
}

fn verify_cli(app: &TestApp) -> std::process::Output {
    app.db.cli(&["--json", "audit", "verify"], None)
}

/// Records written through the app and the CLI are sealed by
/// `audit verify`; an edit (also with the content hash recomputed), a
/// deletion in the middle and a cut-off tail are each named at the first
/// record concerned; putting the record back makes the chain whole again.
#[tokio::test]
async fn audit_verify_names_the_first_edited_deleted_or_missing_record() {
    let app = spawn_app().await;
    app.create_user("ada", "violet anvil tramline", &[]).await;
    assert!(app.db.cli(&["role", "add", "billing"], None).status.success());
    write_events(&app, 8).await;

    let o = verify_cli(&app);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "intact");
    let total = v["records"].as_i64().unwrap();
    assert!(total >= 10, "the app's, the CLI's and the test's records: {v}");
    assert_eq!(v["head"]["seq"].as_i64().unwrap(), total);
    let head_hash = v["head"]["hash"].as_str().unwrap().to_owned();
    let unsealed = audit_event::Entity::find().filter(audit_event::Column::Seq.is_null()).all(&app.state.db).await;
    assert!(unsealed.unwrap().is_empty(), "every record sealed");

    // An edit of any field — here the outcome of record 5.
    let original = by_seq(&app, 5).await;
    set(&app, 5, audit_event::Column::Outcome, "failure").await;
    let o = verify_cli(&app);
    assert_clean_failure(&o, "broken at record 5");
    assert!(stderr(&o).contains("edited"), "{}", stderr(&o));
    // Recomputing the content hash does not hide it: the link is keyed.
    set(&app, 5, audit_event::Column::ContentHash, audit_chain::content_hash(&by_seq(&app, 5).await)).await;
    assert_clean_failure(&verify_cli(&app), "broken at record 5");
    original.clone().into_active_model().reset_all().update(&app.state.db).await.unwrap();
    assert!(verify_cli(&app).status.success(), "restored, the chain holds again");

    // A record deleted from the middle.
    audit_event::Entity::delete_by_id(original.id).exec(&app.state.db).await.unwrap();
    let o = verify_cli(&app);
    assert_clean_failure(&o, "broken at record 5");
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
    original.clone().into_active_model().reset_all().insert(&app.state.db).await.unwrap();
    assert!(verify_cli(&app).status.success());

    // The newest record cut off.
    let last = by_seq(&app, total).await;
    audit_event::Entity::delete_by_id(last.id).exec(&app.state.db).await.unwrap();
    let o = verify_cli(&app);
    assert_clean_failure(&o, &format!("broken at record {total}"));
    assert!(stderr(&o).contains("cut off"), "{}", stderr(&o));
    // … also when the head row is set back to the record before: a copy of
    // the head kept elsewhere (/metrics) shows it.
    let before = by_seq(&app, total - 1).await;
    chain_row::Entity::update_many()
        .col_expr(chain_row::Column::Seq, Expr::value(total - 1))
        .col_expr(chain_row::Column::Hash, Expr::value(before.hash.clone().unwrap()))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert!(verify_cli(&app).status.success(), "a consistent shorter chain");
    let expect = format!("{total}:{head_hash}");
    assert_clean_failure(&app.db.cli(&["audit", "verify", "--expect", &expect], None), "does not hold the expected");
    chain_row::Entity::update_many()
        .col_expr(chain_row::Column::Seq, Expr::value(total))
        .col_expr(chain_row::Column::Hash, Expr::value(head_hash.clone()))
        .exec(&app.state.db)
        .await
        .unwrap();
    last.into_active_model().reset_all().insert(&app.state.db).await.unwrap();
    assert!(app.db.cli(&["audit", "verify", "--expect", &expect], None).status.success());
}

/// An erasure's mark (`redacted`) excuses personal fields only: with it, a
/// changed detail is counted as redacted; a changed outcome is still caught.
#[tokio::test]
async fn a_redaction_mark_does_not_excuse_edits_of_the_record_core() {
    let app = spawn_app().await;
    write_events(&app, 4).await;
    seal(&app).await;
    set(&app, 2, audit_event::Column::Detail, "{}").await;
    set(&app, 2, audit_event::Column::Redacted, true).await;
    match verify(&app).await {
        Verdict::Intact { redacted, .. } => assert_eq!(redacted, 1),
        broken => panic!("{broken:?}"),
    }
    set(&app, 2, audit_event::Column::Outcome, "failure").await;
    assert!(matches!(verify(&app).await, Verdict::Broken { seq: 2, .. }), "{:?}", verify(&app).await);
}

/// The invariant under concurrency: records written by many tasks while two
/// sealers (two instances) run, and while the chain is verified, all end up
/// sealed exactly once, numbered 1…n without a gap; no verification in
/// between reports a break.
#[tokio::test]
async fn concurrent_writers_sealers_and_verifiers_make_one_gapless_chain() {
    let app = spawn_app().await;
    let key = app.state.master_key.audit_key().clone();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = app.state.db.clone();
            let clock = app.state.clock.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let e = AuditEvent::new("test.event", "success").detail(json!({ "w": w, "i": i }));
                    record_audit(&db, e, clock.now()).await.unwrap();
                }
            })
        })
        .collect();
    let sealers: Vec<_> = (0..2)
        .map(|_| {
            let (db, key) = (app.state.db.clone(), key.clone());
            tokio::spawn(async move {
                for _ in 0..20 {
                    audit_chain::seal(&db, &key).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let verifier = {
        let (db, key) = (app.state.db.clone(), key.clone());
        tokio::spawn(async move {
            for _ in 0..20 {
                let v = audit_chain::verify(&db, &key).await.unwrap();
                assert!(matches!(v, Verdict::Intact { .. }), "while sealing: {v:?}");
                tokio::task::yield_now().await;
            }
        })
    };
    for t in writers.into_iter().chain(sealers).chain([verifier]) {
        t.await.unwrap();
    }
    seal(&app).await;
    let rows = audit_event::Entity::find().order_by_asc(audit_event::Column::Seq).all(&app.state.db).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq.unwrap()).collect();
    assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>(), "sealed once each, without a gap");
    assert!(rows.len() >= 100);
    match verify(&app).await {
        Verdict::Intact { records, head, unsealed, .. } => {
            assert_eq!(records as usize, rows.len());
            assert_eq!(head.seq as usize, rows.len());
            assert_eq!(unsealed, 0);
        }
        broken => panic!("{broken:?}"),
    }
}

/// Retention removes the oldest records and seals a record saying how far:
/// the chain still verifies. Removing records outside retention (moving the
/// chain's start by hand) is caught, and retention never removes a record
/// that was tampered with (here: backdated to fall under it).
#[tokio::test]
async fn retention_is_told_apart_from_deletion_and_never_removes_evidence() {
    let app = spawn_app().await;
    write_events(&app, 3).await;
    seal(&app).await;
    app.state.clock.advance(chrono::Duration::days(app.state.settings.audit_retention_days + 1));
    write_events(&app, 3).await;
    seal(&app).await;
    let Verdict::Intact { head: before, .. } = verify(&app).await else { panic!() };
    let key = app.state.master_key.audit_key();
    portcullis::storage::purge::purge_once(&app.state.db, &app.state.settings, &app.state.clock, key).await.unwrap();
    let head = chain_row::Entity::find_by_id(1).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(head.pruned_through, before.seq - 3, "the old records went, the three recent ones stay: {head:?}");
    match verify(&app).await {
        Verdict::Intact { head: h, .. } => assert_eq!(h.seq, before.seq + 1, "plus the retention record"),
        broken => panic!("{broken:?}"),
    }
    let stamp = by_seq(&app, before.seq + 1).await;
    assert_eq!(stamp.event_type, "audit.pruned");

    // Deleting the next records and moving the start by hand: caught.
    let first_kept = head.pruned_through + 1;
    audit_event::Entity::delete_many()
        .filter(audit_event::Column::Seq.eq(first_kept))
        .exec(&app.state.db)
        .await
        .unwrap();
    chain_row::Entity::update_many()
        .col_expr(chain_row::Column::PrunedThrough, Expr::value(first_kept))
        .exec(&app.state.db)
        .await
        .unwrap();
    match verify(&app).await {
        Verdict::Broken { reason, .. } => assert!(reason.contains("without a retention record"), "{reason}"),
        intact => panic!("a deletion passed as retention: {intact:?}"),
    }
    // Wiping everything and the start with it: caught the same way.
    audit_event::Entity::delete_many().exec(&app.state.db).await.unwrap();
    let total = chain_row::Entity::find_by_id(1).one(&app.state.db).await.unwrap().unwrap().seq;
    chain_row::Entity::update_many()
        .col_expr(chain_row::Column::PrunedThrough, Expr::value(total))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert!(matches!(verify(&app).await, Verdict::Broken { .. }), "an emptied log is not intact");
}

/// Retention checks before it removes: a record backdated to fall under it
/// stays, and so does the evidence.
#[tokio::test]
async fn retention_stops_at_a_tampered_record() {
    let app = spawn_app().await;
    write_events(&app, 5).await;
    seal(&app).await;
    // Backdating records 1–3 so that retention would remove them.
    for seq in 1..=3 {
        set(&app, seq, audit_event::Column::At, app.state.clock.now() - chrono::Duration::days(400)).await;
    }
    let key = app.state.master_key.audit_key();
    portcullis::storage::purge::purge_once(&app.state.db, &app.state.settings, &app.state.clock, key).await.unwrap();
    let head = chain_row::Entity::find_by_id(1).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(head.pruned_through, 0, "nothing removed");
    assert!(matches!(verify(&app).await, Verdict::Broken { seq: 1, .. }), "the evidence is still there");
}

/// The head is in /metrics, so a scraper keeps a copy outside the database.
#[tokio::test]
async fn the_chain_head_is_exported_in_metrics() {
    let app = spawn_app().await;
    write_events(&app, 3).await;
    let key = app.state.master_key.audit_key().clone();
    let every = std::time::Duration::from_millis(20);
    audit_chain::spawn_sealer(app.state.db.clone(), key, app.state.metrics.clone(), every);
    let (mut text, mut head) = (String::new(), audit_chain::head(&app.state.db).await.unwrap());
    for _ in 0..200 {
        head = audit_chain::head(&app.state.db).await.unwrap();
        text = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
        if head.seq >= 3 && text.contains(&format!("portcullis_audit_chain_seq {}\n", head.seq)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(head.seq >= 3, "sealed");
    assert!(text.contains(&format!("portcullis_audit_chain_seq {}\n", head.seq)), "{text}");
    assert!(text.contains(&format!(r#"portcullis_audit_chain_head{{hash="{}"}} 1"#, head.hash)), "{text}");
}
