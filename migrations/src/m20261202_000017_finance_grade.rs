//! Finance-grade OAuth (issue #20): pushed authorization requests (RFC 9126),
//! DPoP proofs seen (RFC 9449 `jti` replay, across instances), the key a code
//! or a public client's refresh tokens are bound to, and the per-client
//! switches (`--profile fapi2`, `--dpop`, `--require-par`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    Profile,
    DpopBound,
    RequirePar,
}

#[derive(DeriveIden)]
enum AuthorizationCodes {
    Table,
    DpopJkt,
}

#[derive(DeriveIden)]
enum RefreshFamilies {
    Table,
    DpopJkt,
}

#[derive(DeriveIden)]
enum PushedRequests {
    Table,
    IdHash,
    ClientId,
    Params,
    ExpiresMs,
}

#[derive(DeriveIden)]
enum DpopProofs {
    Table,
    JtiHash,
    ExpiresMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Clients::Table).add_column(text_null(Clients::Profile)).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table(Clients::Table).add_column(boolean(Clients::DpopBound).default(false)).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Clients::Table).add_column(boolean(Clients::RequirePar).default(false)).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuthorizationCodes::Table)
                    .add_column(text_null(AuthorizationCodes::DpopJkt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(RefreshFamilies::Table).add_column(text_null(RefreshFamilies::DpopJkt)).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PushedRequests::Table)
                    .col(text(PushedRequests::IdHash).primary_key())
                    .col(text(PushedRequests::ClientId))
                    .col(text(PushedRequests::Params))
                    .col(big_integer(PushedRequests::ExpiresMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pushed_requests_expires")
                    .table(PushedRequests::Table)
                    .col(PushedRequests::ExpiresMs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DpopProofs::Table)
                    .col(text(DpopProofs::JtiHash).primary_key())
                    .col(big_integer(DpopProofs::ExpiresMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dpop_proofs_expires")
                    .table(DpopProofs::Table)
                    .col(DpopProofs::ExpiresMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DpopProofs::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(PushedRequests::Table).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(RefreshFamilies::Table).drop_column(RefreshFamilies::DpopJkt).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table(AuthorizationCodes::Table).drop_column(AuthorizationCodes::DpopJkt).to_owned(),
            )
            .await?;
        for c in [Clients::RequirePar, Clients::DpopBound, Clients::Profile] {
            manager.alter_table(Table::alter().table(Clients::Table).drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}
