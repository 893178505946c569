//! The audit log's hash chain (issue #19, part 3; ASVS V16.4.x): every
//! record sealed once, in one gapless sequence, also when records are
//! written and sealed concurrently; `portcullis audit verify` names the
//! first record edited, deleted or cut off; retention is told apart from
//! deletion; the head is exported in /metrics.

use portcullis::storage::audit_chain::{self, Verdict};
use portcullis::storage::entities::{audit_chain as chain_row, audit_event};
use portcullis::storage::{AuditEvent, record_audit};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set};
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

fn verify_cli(app: &TestApp) -> std::process::Output {
    app.db.cli(&["--json", "audit", "verify"], None)
}

/// Records written through the app and the CLI are sealed by
/// `audit verify`; an edit, a deletion in the middle and a cut-off tail are
/// each named at the first record concerned, and putting the record back
/// makes the chain whole again.
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
    let unsealed = audit_event::Entity::find().filter(audit_event::Column::Seq.is_null()).all(&app.state.db).await;
    assert!(unsealed.unwrap().is_empty(), "every record sealed");

    // An edit of any field — here the outcome of record 5.
    let original = by_seq(&app, 5).await;
    let mut edited = original.clone().into_active_model();
    edited.outcome = Set("failure".into());
    edited.update(&app.state.db).await.unwrap();
    let o = verify_cli(&app);
    assert_clean_failure(&o, "broken at record 5");
    assert!(stderr(&o).contains("edited"), "{}", stderr(&o));
    // Recomputing the record's own content hash does not hide it: its link breaks.
    let forged = audit_chain::content_hash(&by_seq(&app, 5).await);
    audit_event::Entity::update_many()
        .col_expr(audit_event::Column::ContentHash, Expr::value(forged))
        .filter(audit_event::Column::Seq.eq(5))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert_clean_failure(&verify_cli(&app), "broken at record 5");
    original.clone().into_active_model().reset_all().update(&app.state.db).await.unwrap();
    assert!(verify_cli(&app).status.success(), "restored, the chain holds again");

    // A record deleted from the middle.
    audit_event::Entity::delete_by_id(original.id).exec(&app.state.db).await.unwrap();
    let o = verify_cli(&app);
    assert_clean_failure(&o, "broken at record 5");
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
    audit_event::ActiveModel { ..original.clone().into_active_model() }
        .reset_all()
        .insert(&app.state.db)
        .await
        .unwrap();
    assert!(verify_cli(&app).status.success());

    // The newest record cut off.
    let last = by_seq(&app, total).await;
    audit_event::Entity::delete_by_id(last.id).exec(&app.state.db).await.unwrap();
    let o = verify_cli(&app);
    assert_clean_failure(&o, &format!("broken at record {total}"));
    assert!(stderr(&o).contains("cut off"), "{}", stderr(&o));

    // A record marked redacted is counted apart, never passed as intact silently.
    last.into_active_model().reset_all().insert(&app.state.db).await.unwrap();
    audit_event::Entity::update_many()
        .col_expr(audit_event::Column::Detail, Expr::value("{}"))
        .col_expr(audit_event::Column::Redacted, Expr::value(true))
        .filter(audit_event::Column::Seq.eq(3))
        .exec(&app.state.db)
        .await
        .unwrap();
    let o = verify_cli(&app);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["redacted"], 1, "{v}");
}

/// The invariant under concurrency: records written by many tasks while two
/// sealers (two instances) run at once all end up sealed exactly once, with
/// sequence numbers 1…n without a gap, and the chain verifies.
#[tokio::test]
async fn concurrent_writers_and_sealers_make_one_gapless_chain() {
    let app = spawn_app().await;
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
            let db = app.state.db.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    audit_chain::seal(&db).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(sealers) {
        t.await.unwrap();
    }
    audit_chain::seal(&app.state.db).await.unwrap();
    let rows = audit_event::Entity::find().order_by_asc(audit_event::Column::Seq).all(&app.state.db).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq.unwrap()).collect();
    assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>(), "sealed once each, without a gap");
    assert!(rows.len() >= 100);
    match audit_chain::verify(&app.state.db).await.unwrap() {
        Verdict::Intact { records, head, unsealed, .. } => {
            assert_eq!(records as usize, rows.len());
            assert_eq!(head.seq as usize, rows.len());
            assert_eq!(unsealed, 0);
        }
        broken => panic!("{broken:?}"),
    }
}

/// Retention removes the oldest records and moves the chain's start past
/// them: the chain still verifies, and a deletion of the first kept record
/// is still named (retention and deletion are told apart).
#[tokio::test]
async fn retention_moves_the_start_of_the_chain_and_deletion_is_still_caught() {
    let app = spawn_app().await;
    write_events(&app, 6).await;
    audit_chain::seal(&app.state.db).await.unwrap();
    // Records 1–3 become a year and a day old.
    let old = app.state.clock.now() - chrono::Duration::days(400);
    audit_event::Entity::update_many()
        .col_expr(audit_event::Column::At, Expr::value(old))
        .filter(audit_event::Column::Seq.lte(3))
        .exec(&app.state.db)
        .await
        .unwrap();
    // (Moving them in time is an edit the chain sees…)
    assert!(matches!(audit_chain::verify(&app.state.db).await.unwrap(), Verdict::Broken { seq: 1, .. }));
    // …and retention removes exactly those.
    portcullis::storage::purge::purge_once(&app.state.db, &app.state.settings, &app.state.clock).await.unwrap();
    let head = chain_row::Entity::find_by_id(1).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(head.pruned_through, 3);
    match audit_chain::verify(&app.state.db).await.unwrap() {
        Verdict::Intact { records, head, .. } => {
            assert!(head.seq >= 6);
            assert_eq!(records as i64, head.seq - 3, "all but the three removed");
        }
        broken => panic!("{broken:?}"),
    }
    let fourth = by_seq(&app, 4).await;
    audit_event::Entity::delete_by_id(fourth.id).exec(&app.state.db).await.unwrap();
    match audit_chain::verify(&app.state.db).await.unwrap() {
        Verdict::Broken { seq, reason, .. } => {
            assert_eq!(seq, 4);
            assert!(reason.contains("missing"), "{reason}");
        }
        intact => panic!("a deleted record passed: {intact:?}"),
    }
}

/// The head is in /metrics, so a scraper keeps a copy outside the database.
#[tokio::test]
async fn the_chain_head_is_exported_in_metrics() {
    let app = spawn_app().await;
    write_events(&app, 3).await;
    audit_chain::spawn_sealer(app.state.db.clone(), app.state.metrics.clone(), std::time::Duration::from_millis(20));
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
