//! The `claims` request parameter (OIDC Core §5.5) travels from the
//! authorization request to the code and on to each refresh token.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuthorizationCodes {
    Table,
    Claims,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Claims,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuthorizationCodes::Table)
                    .add_column(text_null(AuthorizationCodes::Claims))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(RefreshTokens::Table).add_column(text_null(RefreshTokens::Claims)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(RefreshTokens::Table).drop_column(RefreshTokens::Claims).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table(AuthorizationCodes::Table).drop_column(AuthorizationCodes::Claims).to_owned(),
            )
            .await
    }
}
