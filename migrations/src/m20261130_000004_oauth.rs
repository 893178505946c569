//! OAuth 2.0 / OpenID Connect: pending authorization requests, codes, refresh
//! token families, revoked access-token ids, consents, and which clients took
//! part in a browser session (for back-channel logout).
//!
//! Every token-like value is stored as a keyed hash, never as issued.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AuthorizationRequests {
    Table,
    IdHash,
    ClientId,
    Params,
    CreatedMs,
    ExpiresMs,
}

#[derive(DeriveIden)]
enum AuthorizationCodes {
    Table,
    CodeHash,
    GrantId,
    ClientId,
    UserId,
    SessionId,
    RedirectUri,
    Scope,
    Nonce,
    CodeChallenge,
    Resource,
    AuthTime,
    Amr,
    Acr,
    CreatedMs,
    ExpiresMs,
    UsedMs,
    AccessJti,
}

#[derive(DeriveIden)]
enum RefreshFamilies {
    Table,
    Id,
    GrantId,
    ClientId,
    UserId,
    SessionId,
    RevokedMs,
    CreatedMs,
    ExpiresMs,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    FamilyId,
    Scope,
    Resource,
    AuthTime,
    Amr,
    Acr,
    CreatedMs,
    ExpiresMs,
    RotatedMs,
}

#[derive(DeriveIden)]
enum RevokedTokens {
    Table,
    Jti,
    RevokedMs,
    ExpiresMs,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    UserId,
    ClientId,
    Scopes,
    GrantedAt,
}

#[derive(DeriveIden)]
enum SessionClients {
    Table,
    SessionId,
    ClientId,
    UserId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthorizationRequests::Table)
                    .col(string(AuthorizationRequests::IdHash).primary_key())
                    .col(string(AuthorizationRequests::ClientId))
                    // The validated request parameters (JSON).
                    .col(text(AuthorizationRequests::Params))
                    .col(big_integer(AuthorizationRequests::CreatedMs))
                    .col(big_integer(AuthorizationRequests::ExpiresMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthorizationCodes::Table)
                    .col(string(AuthorizationCodes::CodeHash).primary_key())
                    .col(string(AuthorizationCodes::GrantId))
                    .col(string(AuthorizationCodes::ClientId))
                    .col(string(AuthorizationCodes::UserId))
                    .col(string(AuthorizationCodes::SessionId))
                    .col(text(AuthorizationCodes::RedirectUri))
                    .col(text(AuthorizationCodes::Scope))
                    .col(text_null(AuthorizationCodes::Nonce))
                    .col(string_null(AuthorizationCodes::CodeChallenge))
                    .col(text_null(AuthorizationCodes::Resource))
                    .col(big_integer(AuthorizationCodes::AuthTime))
                    .col(text(AuthorizationCodes::Amr))
                    .col(string_null(AuthorizationCodes::Acr))
                    .col(big_integer(AuthorizationCodes::CreatedMs))
                    .col(big_integer(AuthorizationCodes::ExpiresMs))
                    .col(big_integer_null(AuthorizationCodes::UsedMs))
                    .col(string_null(AuthorizationCodes::AccessJti))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AuthorizationCodes::Table, AuthorizationCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefreshFamilies::Table)
                    .col(string(RefreshFamilies::Id).primary_key())
                    .col(string_null(RefreshFamilies::GrantId))
                    .col(string(RefreshFamilies::ClientId))
                    .col(string(RefreshFamilies::UserId))
                    .col(string_null(RefreshFamilies::SessionId))
                    .col(big_integer_null(RefreshFamilies::RevokedMs))
                    .col(big_integer(RefreshFamilies::CreatedMs))
                    .col(big_integer(RefreshFamilies::ExpiresMs))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshFamilies::Table, RefreshFamilies::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_refresh_families_grant", RefreshFamilies::GrantId),
            ("idx_refresh_families_user", RefreshFamilies::UserId),
            ("idx_refresh_families_client", RefreshFamilies::ClientId),
        ] {
            manager.create_index(Index::create().name(name).table(RefreshFamilies::Table).col(col).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(string(RefreshTokens::TokenHash).primary_key())
                    .col(string(RefreshTokens::FamilyId))
                    .col(text(RefreshTokens::Scope))
                    .col(text_null(RefreshTokens::Resource))
                    .col(big_integer(RefreshTokens::AuthTime))
                    .col(text(RefreshTokens::Amr))
                    .col(string_null(RefreshTokens::Acr))
                    .col(big_integer(RefreshTokens::CreatedMs))
                    .col(big_integer(RefreshTokens::ExpiresMs))
                    .col(big_integer_null(RefreshTokens::RotatedMs))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshTokens::Table, RefreshTokens::FamilyId)
                            .to(RefreshFamilies::Table, RefreshFamilies::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_family")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::FamilyId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RevokedTokens::Table)
                    .col(string(RevokedTokens::Jti).primary_key())
                    // Instances sync their in-memory revocation list by this.
                    .col(big_integer(RevokedTokens::RevokedMs))
                    .col(big_integer(RevokedTokens::ExpiresMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_revoked_tokens_revoked")
                    .table(RevokedTokens::Table)
                    .col(RevokedTokens::RevokedMs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Consents::Table)
                    .col(string(Consents::UserId))
                    .col(string(Consents::ClientId))
                    .col(text(Consents::Scopes))
                    .col(timestamp_with_time_zone(Consents::GrantedAt))
                    .primary_key(Index::create().col(Consents::UserId).col(Consents::ClientId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SessionClients::Table)
                    .col(string(SessionClients::SessionId))
                    .col(string(SessionClients::ClientId))
                    .col(string(SessionClients::UserId))
                    .primary_key(Index::create().col(SessionClients::SessionId).col(SessionClients::ClientId))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SessionClients::Table.into_iden(),
            Consents::Table.into_iden(),
            RevokedTokens::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            RefreshFamilies::Table.into_iden(),
            AuthorizationCodes::Table.into_iden(),
            AuthorizationRequests::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
