//! An authorization request remembers the session that logged in for it, so
//! `prompt=login` and `max_age` are answered by that login whatever the clock
//! resolution (`auth_time` is whole seconds).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuthorizationRequests {
    Table,
    LoginSession,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuthorizationRequests::Table)
                    .add_column(text_null(AuthorizationRequests::LoginSession))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuthorizationRequests::Table)
                    .drop_column(AuthorizationRequests::LoginSession)
                    .to_owned(),
            )
            .await
    }
}
