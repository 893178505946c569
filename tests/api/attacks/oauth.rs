//! Every path to a code runs one decision; codes and refresh tokens cannot
//! outlive or fork what they came from; claims follow consent (items 6, 8–10,
//! 14, 15).

use portcullis::admin::Actor;
use portcullis::admin::clients::{ClientPatch, ClientSpec};
use serde_json::Value;

use crate::helpers::{TestApp, claims_of, csrf_in, location, spawn_app};
use crate::oauth::{CB, PW, exchange, get_code, introspect, register, token_req, urlencode, web_client};

/// RFC 7636 Appendix B's verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn authorize_url(app: &TestApp, client: &str, extra: &str) -> String {
    app.url(&format!(
        "/authorize?response_type=code&client_id={client}&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        urlencode(CB)
    ))
}

/// Item 6: when `/authorize` sent a session to log in again (a client that
/// requires MFA, `prompt=login`, `max_age=0`), going straight to
/// `/consent?request=H` issued the code anyway. Every entry point must run
/// the one decision on the stored request.
#[tokio::test]
async fn the_consent_page_cannot_skip_a_step_up_or_a_fresh_login() {
    let app = spawn_app().await;
    app.create_user("hana", PW, &[]).await;
    register(&app, ClientSpec { require_mfa: true, first_party: false, ..web_client("bank") }).await.unwrap();
    register(&app, ClientSpec { first_party: false, ..web_client("shop") }).await.unwrap();
    let b = app.browser();
    assert_eq!(app.login(&b, "hana", PW).await.status(), 303, "a password-only session");
    app.state.clock.advance(chrono::Duration::seconds(5));

    for url in [
        authorize_url(&app, "bank", ""),
        authorize_url(&app, "shop", "&prompt=login"),
        authorize_url(&app, "shop", "&max_age=0"),
        authorize_url(&app, "bank", "&prompt=consent"),
    ] {
        let r = b.get(&url).send().await.unwrap();
        let to = location(&r);
        assert!(to.starts_with("/login?request="), "{url} → {to}");
        let handle = to.trim_start_matches("/login?request=").to_owned();
        // Straight to the consent page instead of logging in.
        let r = b.get(app.url(&format!("/consent?request={handle}"))).send().await.unwrap();
        assert_eq!(location(&r), to, "GET /consent sends back to log in ({url})");
        let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        let r = b
            .post(app.url("/consent"))
            .form(&[("csrf", csrf_in(&page).as_str()), ("request", handle.as_str()), ("decision", "approve")])
            .send()
            .await
            .unwrap();
        let back = location(&r);
        assert!(!back.contains("code="), "approving consent issued a code for {url}: {back}");
        assert_eq!(back, to);
        // And /authorize/continue says the same.
        let r = b.get(app.url(&format!("/authorize/continue?request={handle}"))).send().await.unwrap();
        assert!(!location(&r).contains("code="));
    }
}

/// Item 8: two parallel redemptions of one code — the replay was detected,
/// yet the winner's refresh token survived in most runs.
#[tokio::test]
async fn a_replayed_code_revokes_the_winners_tokens_whatever_the_interleaving() {
    let app = spawn_app().await;
    app.create_user("carl", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let b = app.browser();
    for run in 0..12 {
        let (code, verifier) = get_code(&app, &b, "webapp", "carl", "").await;
        let (one, two) = tokio::join!(
            exchange(&app, "webapp", &secret, &code, &verifier),
            exchange(&app, "webapp", &secret, &code, &verifier)
        );
        let winners: Vec<&(u16, Value)> = [&one, &two].into_iter().filter(|(s, _)| *s == 200).collect();
        assert!(winners.len() <= 1, "run {run}: one code, two token sets");
        for (_, t) in winners {
            let rt = t["refresh_token"].as_str().unwrap();
            let (_, r, _) =
                token_req(&app, Some(("webapp", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", rt)])
                    .await;
            assert_eq!(r["error"], "invalid_grant", "run {run}: the winner's refresh token outlived the replay");
            let intro = introspect(&app, "webapp", &secret, t["access_token"].as_str().unwrap()).await;
            assert_eq!(intro["active"], false, "run {run}");
        }
    }
}

/// Item 9: a code minted before a logout (or a password reset, or "end all
/// sessions") was still redeemed afterwards, and its refresh family lived on.
#[tokio::test]
async fn a_code_is_worthless_once_its_session_has_ended() {
    let app = spawn_app().await;
    app.create_user("dora", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    for how in ["logout", "password reset", "end all sessions"] {
        let b = app.browser();
        let (code, verifier) = get_code(&app, &b, "webapp", "dora", "").await;
        match how {
            "logout" => {
                let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
                b.post(app.url("/logout")).form(&[("csrf", csrf_in(&html))]).send().await.unwrap();
            }
            "password reset" => {
                let pw = secrecy::SecretString::from("another fine passphrase".to_owned());
                portcullis::admin::users::set_password(&app.state, &Actor::cli(), "dora", &pw).await.unwrap();
                let pw = secrecy::SecretString::from(PW.to_owned());
                portcullis::admin::users::set_password(&app.state, &Actor::cli(), "dora", &pw).await.unwrap();
            }
            _ => {
                portcullis::admin::users::end_all_sessions(&app.state, &Actor::cli()).await.unwrap();
            }
        }
        let (status, body) = exchange(&app, "webapp", &secret, &code, &verifier).await;
        assert_eq!(status, 400, "{how}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{how}");
    }
}

async fn refresh(app: &TestApp, secret: &str, rt: &str) -> (u16, Value) {
    let (s, v, _) =
        token_req(app, Some(("webapp", secret)), &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    (s, v)
}

/// Item 10: within the old 10 s grace, 20 parallel refreshes gave 20 live,
/// independent chains and no replay was ever detected. Now rotation is
/// strict unless a client opts in, and even then a rotated-out token is
/// redeemed at most once more.
#[tokio::test]
async fn parallel_refreshes_cannot_fork_a_family() {
    let app = spawn_app().await;
    app.create_user("erin", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let (code, verifier) = get_code(&app, &app.browser(), "webapp", "erin", "").await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, &verifier).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let results = futures_util::future::join_all((0..20).map(|_| refresh(&app, &secret, &rt))).await;
    let won: Vec<&Value> = results.iter().filter(|(s, _)| *s == 200).map(|(_, v)| v).collect();
    assert!(won.len() <= 1, "{} parallel refreshes succeeded", won.len());
    for v in won {
        let (s, _) = refresh(&app, &secret, v["refresh_token"].as_str().unwrap()).await;
        assert_eq!(s, 400, "the replays ended the whole family, the winner's chain included");
    }

    // A client that registered a grace: the old token works once more within
    // it (audited), never twice.
    let patch = ClientPatch { refresh_grace_secs: Some(Some(30)), ..Default::default() };
    portcullis::admin::clients::update(&app.state, &Actor::cli(), "webapp", patch).await.unwrap();
    app.state.clients.invalidate("webapp");
    let (code, verifier) = get_code(&app, &app.browser(), "webapp", "erin", "").await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, &verifier).await;
    let r1 = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(&app, &secret, &r1).await.0, 200);
    assert_eq!(refresh(&app, &secret, &r1).await.0, 200, "once more within the grace");
    let (s, body) = refresh(&app, &secret, &r1).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "but never twice");
    // Past the grace, even the first reuse is a replay.
    let (code, verifier) = get_code(&app, &app.browser(), "webapp", "erin", "").await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, &verifier).await;
    let r1 = t["refresh_token"].as_str().unwrap().to_owned();
    let (_, next) = refresh(&app, &secret, &r1).await;
    app.state.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(refresh(&app, &secret, &r1).await.0, 400);
    assert_eq!(refresh(&app, &secret, next["refresh_token"].as_str().unwrap()).await.0, 400, "family revoked");
    // A grace longer than 60 s is refused.
    let patch = ClientPatch { refresh_grace_secs: Some(Some(61)), ..Default::default() };
    assert!(portcullis::admin::clients::update(&app.state, &Actor::cli(), "webapp", patch).await.is_err());
}

/// Item 14: a third-party client that asked only for `openid` got the user's
/// roles in its tokens, though the consent page never mentioned them.
#[tokio::test]
async fn roles_are_released_only_with_the_roles_scope() {
    let app = spawn_app().await;
    portcullis::admin::roles::add(&app.state, &Actor::cli(), "finance", None).await.unwrap();
    app.create_user("fay", PW, &["finance"]).await;
    let secret = register(
        &app,
        ClientSpec { first_party: false, scopes: vec!["profile".into(), "roles".into()], ..web_client("thirdparty") },
    )
    .await
    .unwrap();
    let b = app.browser();
    let (code, verifier) = get_code(&app, &b, "thirdparty", "fay", "").await;
    let (_, t) = exchange(&app, "thirdparty", &secret, &code, &verifier).await;
    assert!(claims_of(t["id_token"].as_str().unwrap()).get("roles").is_none());
    assert!(claims_of(t["access_token"].as_str().unwrap()).get("roles").is_none());
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=thirdparty&redirect_uri={}&scope=openid%20roles&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        urlencode(CB)
    ));
    let back = crate::oauth::walk(&app, &b, &url, "fay", PW).await;
    let code = url::Url::parse(&back).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let (_, t) = exchange(&app, "thirdparty", &secret, &code, VERIFIER).await;
    assert_eq!(claims_of(t["id_token"].as_str().unwrap())["roles"], serde_json::json!(["finance"]));
    assert_eq!(claims_of(t["access_token"].as_str().unwrap())["roles"], serde_json::json!(["finance"]));
}

/// Item 15: the protocol nits.
#[tokio::test]
async fn protocol_details_follow_the_rfcs() {
    let app = spawn_app().await;
    app.create_user("gus", PW, &[]).await;
    let secret = register(
        &app,
        ClientSpec { redirect_uris: vec!["http://127.0.0.1/cb".into(), CB.into()], ..web_client("native") },
    )
    .await
    .unwrap();
    let http = app.browser();
    // RFC 8252 §7.3: any port on a loopback IP redirect URI.
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=native&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256&request=x",
        urlencode("http://127.0.0.1:53124/cb")
    ));
    let back = location(&http.get(&url).send().await.unwrap());
    assert!(back.starts_with("http://127.0.0.1:53124/cb?"), "{back}");
    // OIDC Core §3.1.2.6: a request object that is not one, and request_uri,
    // have their own codes.
    assert!(back.contains("error=invalid_request_object"), "{back}");
    // …and without a request object, the request itself is accepted on
    // another port (it goes on to the login).
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=native&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        urlencode("http://127.0.0.1:53125/cb")
    ));
    assert!(location(&http.get(&url).send().await.unwrap()).starts_with("/login?request="));
    let url = authorize_url(&app, "native", "&request_uri=urn%3Ax");
    assert!(location(&http.get(&url).send().await.unwrap()).contains("error=request_uri_not_supported"));
    // Only loopback: another host's port must match exactly.
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=native&redirect_uri={}&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256",
        urlencode("http://127.0.0.2.example.com:8080/cb")
    ));
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        400,
        "an unregistered redirect is a page, not a redirect"
    );

    // RFC 6750 §3.1: no token, no error code.
    for path in ["/userinfo", "/admin/api/v1/users"] {
        let r = reqwest::Client::new().get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer") && !challenge.contains("error="), "{path}: {challenge}");
    }

    // RFC 7662 §4: a client learns nothing about tokens that are not its
    // own or meant for it.
    let (code, verifier) = get_code(&app, &app.browser(), "native", "gus", "").await;
    let (_, t) = exchange(&app, "native", &secret, &code, &verifier).await;
    let at = t["access_token"].as_str().unwrap();
    let other = register(
        &app,
        ClientSpec { client_id: "stranger".into(), grants: vec!["client_credentials".into()], ..Default::default() },
    )
    .await
    .unwrap();
    assert_eq!(introspect(&app, "stranger", &other, at).await["active"], false);
    assert_eq!(introspect(&app, "native", &secret, at).await["active"], true);
}
