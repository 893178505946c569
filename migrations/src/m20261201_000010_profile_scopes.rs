//! Address and phone number on the user (OIDC Core §5.1), and standard scopes
//! registered per client (ASVS 5.0 V10.4.11). Until now every client could
//! ask for `profile`, `email` and `roles`: existing clients get those added to
//! their registration, so nothing that worked stops working; new clients get
//! only what they register.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    PhoneNumber,
    Address,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    ClientId,
    Scopes,
}

const GRANDFATHERED: [&str; 3] = ["profile", "email", "roles"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Users::Table).add_column(text_null(Users::PhoneNumber)).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Users::Table).add_column(text_null(Users::Address)).to_owned())
            .await?;
        let db = manager.get_connection();
        let select = Query::select().columns([Clients::ClientId, Clients::Scopes]).from(Clients::Table).to_owned();
        let rows = db.query_all(&select).await?;
        for row in rows {
            let id: String = row.try_get("", "client_id")?;
            let text: String = row.try_get("", "scopes")?;
            let mut scopes: Vec<String> = serde_json::from_str(&text).unwrap_or_default();
            for s in GRANDFATHERED {
                if !scopes.iter().any(|x| x == s) {
                    scopes.push(s.to_owned());
                }
            }
            let update = Query::update()
                .table(Clients::Table)
                .value(Clients::Scopes, serde_json::Value::from(scopes).to_string())
                .and_where(Expr::col(Clients::ClientId).eq(id))
                .to_owned();
            db.execute(&update).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::Address).to_owned()).await?;
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::PhoneNumber).to_owned()).await
    }
}
