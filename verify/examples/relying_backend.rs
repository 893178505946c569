// A relying backend that trusts Portcullis access tokens.
//
//   ISSUER=http://127.0.0.1:8080 AUDIENCE=https://api.example.com BIND=127.0.0.1:9000 \
//     cargo run -p portcullis-verify --example relying_backend
//
// Routes: `GET /public` (anyone), `GET /me` (any valid token), `GET /billing`
// (tokens with the `billing` role). Set INTROSPECTION_CLIENT and
// INTROSPECTION_SECRET to also check every token online (revocation).

use actix_web::{App, HttpResponse, HttpServer, web};
use portcullis_verify::{Authenticated, RoleName, Verifier, VerifierConfig, WithRole};
use serde_json::json;

/// The role `GET /billing` needs.
pub struct Billing;
impl RoleName for Billing {
    const ROLE: &'static str = "billing";
}

async fn public() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "hello": "anyone" }))
}

async fn me(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "sub": user.sub, "roles": user.roles, "scope": user.scope }))
}

async fn billing(user: WithRole<Billing>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "invoices_for": user.sub }))
}

/// The backend's routes (the tests mount the same ones).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/public", web::get().to(public))
        .route("/me", web::get().to(me))
        .route("/billing", web::get().to(billing));
}

#[allow(dead_code)]
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let mut config =
        VerifierConfig::new(env("ISSUER", "http://127.0.0.1:8080"), env("AUDIENCE", "https://api.example.com"));
    if let (Ok(id), Ok(secret)) = (std::env::var("INTROSPECTION_CLIENT"), std::env::var("INTROSPECTION_SECRET")) {
        config.introspection = Some((id, secret));
    }
    let verifier = Verifier::discover(config).await.map_err(std::io::Error::other)?;
    let bind = env("BIND", "127.0.0.1:9000");
    println!("relying backend on http://{bind}");
    HttpServer::new(move || App::new().app_data(web::Data::new(verifier.clone())).configure(routes))
        .bind(bind)?
        .run()
        .await
}
