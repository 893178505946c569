//! The foundation schema: users and their credentials, roles, attributes, clients,
//! signing keys and the audit log.
//!
//! Portability rules kept here: identifiers are text (UUIDs as their canonical
//! string), lists are JSON text, times are `timestamp with time zone` (text on
//! SQLite), booleans are booleans. No backend-specific SQL.

use sea_orm_migration::{prelude::*, schema::*, sea_orm};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameKey,
    Email,
    DisplayName,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PasswordCredentials {
    Table,
    UserId,
    Phc,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    Name,
    Description,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserRoles {
    Table,
    UserId,
    RoleName,
}

#[derive(DeriveIden)]
enum UserAttributes {
    Table,
    UserId,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    ClientId,
    Name,
    Public,
    SecretHash,
    RedirectUris,
    PostLogoutRedirectUris,
    GrantTypes,
    Scopes,
    FirstParty,
    PkceRequired,
    IdTokenAlg,
    RequireMfa,
    BackchannelLogoutUri,
    Jwks,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ClientRoles {
    Table,
    ClientId,
    RoleName,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Alg,
    PrivateKey,
    PublicJwk,
    Active,
    CreatedAt,
    RetiredAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    EventType,
    Outcome,
    Actor,
    UserId,
    ClientId,
    Ip,
    UserAgent,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string(Users::Id).primary_key())
                    .col(string(Users::Username))
                    // Lower-cased NFKC form: makes usernames unique case-insensitively
                    // on both backends without collation tricks.
                    .col(string_uniq(Users::UsernameKey))
                    .col(string_null(Users::Email))
                    .col(string_null(Users::DisplayName))
                    .col(boolean(Users::Disabled).default(false))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PasswordCredentials::Table)
                    .col(string(PasswordCredentials::UserId).primary_key())
                    .col(string(PasswordCredentials::Phc))
                    .col(timestamp_with_time_zone(PasswordCredentials::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PasswordCredentials::Table, PasswordCredentials::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(string(Roles::Name).primary_key())
                    .col(string_null(Roles::Description))
                    .col(timestamp_with_time_zone(Roles::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UserRoles::Table)
                    .col(string(UserRoles::UserId))
                    .col(string(UserRoles::RoleName))
                    .primary_key(Index::create().col(UserRoles::UserId).col(UserRoles::RoleName))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserRoles::Table, UserRoles::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserRoles::Table, UserRoles::RoleName)
                            .to(Roles::Table, Roles::Name)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_user_roles_role").table(UserRoles::Table).col(UserRoles::RoleName).to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UserAttributes::Table)
                    .col(string(UserAttributes::UserId))
                    .col(string(UserAttributes::Key))
                    .col(string(UserAttributes::Value))
                    .primary_key(Index::create().col(UserAttributes::UserId).col(UserAttributes::Key))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserAttributes::Table, UserAttributes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Clients::Table)
                    .col(string(Clients::ClientId).primary_key())
                    .col(string_null(Clients::Name))
                    .col(boolean(Clients::Public))
                    .col(string_null(Clients::SecretHash))
                    .col(text(Clients::RedirectUris))
                    .col(text(Clients::PostLogoutRedirectUris))
                    .col(text(Clients::GrantTypes))
                    .col(text(Clients::Scopes))
                    .col(boolean(Clients::FirstParty).default(false))
                    .col(boolean(Clients::PkceRequired).default(true))
                    .col(string(Clients::IdTokenAlg))
                    .col(boolean(Clients::RequireMfa).default(false))
                    .col(string_null(Clients::BackchannelLogoutUri))
                    .col(text_null(Clients::Jwks))
                    .col(timestamp_with_time_zone(Clients::CreatedAt))
                    .col(timestamp_with_time_zone(Clients::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ClientRoles::Table)
                    .col(string(ClientRoles::ClientId))
                    .col(string(ClientRoles::RoleName))
                    .primary_key(Index::create().col(ClientRoles::ClientId).col(ClientRoles::RoleName))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ClientRoles::Table, ClientRoles::ClientId)
                            .to(Clients::Table, Clients::ClientId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ClientRoles::Table, ClientRoles::RoleName)
                            .to(Roles::Table, Roles::Name)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string(SigningKeys::Kid).primary_key())
                    .col(string(SigningKeys::Alg))
                    // AES-256-GCM envelope of the PKCS#8 private key (kid as AAD).
                    .col(blob(SigningKeys::PrivateKey))
                    .col(text(SigningKeys::PublicJwk))
                    .col(boolean(SigningKeys::Active))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(SigningKeys::RetiredAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(big_integer(AuditEvents::Id).auto_increment().primary_key())
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(string(AuditEvents::EventType))
                    .col(string(AuditEvents::Outcome))
                    .col(string_null(AuditEvents::Actor))
                    .col(string_null(AuditEvents::UserId))
                    .col(string_null(AuditEvents::ClientId))
                    .col(string_null(AuditEvents::Ip))
                    .col(string_null(AuditEvents::UserAgent))
                    .col(text(AuditEvents::Detail))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_audit_at", AuditEvents::At),
            ("idx_audit_user", AuditEvents::UserId),
            ("idx_audit_type", AuditEvents::EventType),
        ] {
            manager.create_index(Index::create().name(name).table(AuditEvents::Table).col(col).to_owned()).await?;
        }

        // The built-in administrator role (Administration issue: holds every
        // admin permission). Seeded so a fresh install can grant it at once.
        let now: sea_orm::prelude::ChronoDateTimeUtc = sea_orm::prelude::ChronoUtc::now();
        let mut seed = Query::insert();
        seed.into_table(Roles::Table)
            .columns([Roles::Name, Roles::Description, Roles::CreatedAt])
            .values(["admin".into(), "Built-in: every administrative permission".into(), now.into()])
            .map_err(|e| DbErr::Migration(e.to_string()))?;
        manager.exec_stmt(seed).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvents::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            ClientRoles::Table.into_iden(),
            Clients::Table.into_iden(),
            UserAttributes::Table.into_iden(),
            UserRoles::Table.into_iden(),
            Roles::Table.into_iden(),
            PasswordCredentials::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
