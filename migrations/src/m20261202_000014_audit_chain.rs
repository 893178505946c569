//! Tamper evidence and delivery of the audit log: each sealed record carries
//! its place in one chain (`seq`, from 1, in the order the records were
//! sealed), the SHA-256 of its fields (`content_hash`) and a hash over the
//! previous record's hash and that one (`hash`); `redacted` marks a record
//! that an erasure rewrote (its content no longer matches, its link still
//! does); `audit_chain` holds the head (the last sequence number and hash)
//! and how far retention has removed the start. `audit_sinks` keeps, per
//! configured sink, the last sequence number delivered (the log is its own
//! outbox) and the lease of the instance delivering to it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Seq,
    PrevHash,
    ContentHash,
    Hash,
    Redacted,
}

#[derive(DeriveIden)]
enum AuditChain {
    Table,
    Id,
    Seq,
    Hash,
    PrunedThrough,
}

#[derive(DeriveIden)]
enum AuditSinks {
    Table,
    Name,
    DeliveredSeq,
    DeadLetters,
    LeaseHolder,
    LeaseUntilMs,
}

/// The hash before the first record: 64 zeros.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for col in [
            big_integer_null(AuditEvents::Seq),
            text_null(AuditEvents::PrevHash),
            text_null(AuditEvents::ContentHash),
            text_null(AuditEvents::Hash),
            boolean(AuditEvents::Redacted).default(false).to_owned(),
        ] {
            manager.alter_table(Table::alter().table(AuditEvents::Table).add_column(col).to_owned()).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_seq")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditChain::Table)
                    .col(integer(AuditChain::Id).primary_key())
                    .col(big_integer(AuditChain::Seq))
                    .col(text(AuditChain::Hash))
                    .col(big_integer(AuditChain::PrunedThrough))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(AuditChain::Table)
                    .columns([AuditChain::Id, AuditChain::Seq, AuditChain::Hash, AuditChain::PrunedThrough])
                    .values_panic([1.into(), 0i64.into(), GENESIS.into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditSinks::Table)
                    .col(text(AuditSinks::Name).primary_key())
                    .col(big_integer(AuditSinks::DeliveredSeq))
                    .col(big_integer(AuditSinks::DeadLetters))
                    .col(text_null(AuditSinks::LeaseHolder))
                    .col(big_integer_null(AuditSinks::LeaseUntilMs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditSinks::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(AuditChain::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name("idx_audit_events_seq").table(AuditEvents::Table).to_owned()).await?;
        for col in [
            AuditEvents::Redacted,
            AuditEvents::Hash,
            AuditEvents::ContentHash,
            AuditEvents::PrevHash,
            AuditEvents::Seq,
        ] {
            manager.alter_table(Table::alter().table(AuditEvents::Table).drop_column(col).to_owned()).await?;
        }
        Ok(())
    }
}
