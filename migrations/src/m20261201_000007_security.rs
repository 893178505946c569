//! Security fixes of the attack review: a pending TOTP enrolment is bound to
//! the login challenge or session that started it; a client may opt in to a
//! short refresh-token grace; a rotated-out refresh token records whether its
//! one grace redemption was spent.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TotpEnrolments {
    Table,
    Binding,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    RefreshGraceSecs,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    GraceUsed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Pending enrolments made before this change belong to nobody now.
        manager.exec_stmt(Query::delete().from_table(TotpEnrolments::Table).to_owned()).await?;
        manager
            .alter_table(
                Table::alter().table(TotpEnrolments::Table).add_column(text_null(TotpEnrolments::Binding)).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Clients::Table).add_column(integer_null(Clients::RefreshGraceSecs)).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshTokens::Table)
                    .add_column(boolean(RefreshTokens::GraceUsed).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(RefreshTokens::Table).drop_column(RefreshTokens::GraceUsed).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Clients::Table).drop_column(Clients::RefreshGraceSecs).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(TotpEnrolments::Table).drop_column(TotpEnrolments::Binding).to_owned())
            .await
    }
}
