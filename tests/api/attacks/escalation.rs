//! The invariant behind items 3 and 4, as a property: for random actors
//! (random sets of roles, so random permissions) and random targets (users and
//! clients with random roles, some clients allowed admin-API tokens), no
//! sequence of two admin operations lets the actor obtain a session or a token
//! with a permission it did not hold.
//!
//! "Obtain" is what an attacker does next: a user whose password the actor
//! set (or created) is theirs to log in as; a client whose secret, keys or
//! redirect URIs the actor set (or created) acts for them — with the client's
//! own roles, and, if it may ask for admin-API tokens, with whatever an
//! administrator signing in to it holds (everything).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis::admin::clients::{ClientPatch, ClientSpec};
use portcullis::admin::users::NewUser;
use portcullis::admin::{Actor, clients, roles, users};
use portcullis::policy::{Permission, Principal, permissions_of};
use proptest::prelude::*;
use secrecy::SecretString;

use crate::helpers::{TestApp, spawn_app};

const ROLES: [&str; 8] = [
    "admin",
    "users:read",
    "users:write",
    "users:credentials",
    "clients:write",
    "roles:write",
    "sessions:revoke",
    "billing",
];

#[derive(Debug, Clone, Copy)]
enum Who {
    Myself,
    TargetUser,
}

#[derive(Debug, Clone)]
enum Op {
    SetPassword(Who),
    ResetMfa(Who),
    Grant(Who, usize),
    CreateUser(Vec<usize>),
    AddClient(Vec<usize>, bool),
    RotateSecret,
    ChangeRedirect,
    SetClientRoles(Vec<usize>),
    AllowAdminAudience,
}

fn role_set() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..ROLES.len(), 0..3)
}

fn op() -> impl Strategy<Value = Op> {
    let who = prop_oneof![Just(Who::Myself), Just(Who::TargetUser)];
    prop_oneof![
        who.clone().prop_map(Op::SetPassword),
        who.clone().prop_map(Op::ResetMfa),
        (who, 0..ROLES.len()).prop_map(|(w, r)| Op::Grant(w, r)),
        role_set().prop_map(Op::CreateUser),
        (role_set(), any::<bool>()).prop_map(|(r, a)| Op::AddClient(r, a)),
        Just(Op::RotateSecret),
        Just(Op::ChangeRedirect),
        role_set().prop_map(Op::SetClientRoles),
        Just(Op::AllowAdminAudience),
    ]
}

fn names(idx: &[usize]) -> Vec<String> {
    let set: BTreeSet<&str> = idx.iter().map(|i| ROLES[*i]).collect();
    set.into_iter().map(str::to_owned).collect()
}

/// What the actor can act as, after some operations.
#[derive(Default)]
struct Controlled {
    users: Vec<String>,
    clients: Vec<String>,
}

async fn obtained(app: &TestApp, c: &Controlled) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    let admin_aud = format!("{}/admin", app.address);
    for u in &c.users {
        let view = users::show(&app.state, &portcullis::admin::Actor::cli(), u).await.unwrap();
        out.extend(permissions_of(&view.roles).into_iter().map(Permission::as_str));
    }
    for id in &c.clients {
        let view = clients::show(&app.state, &portcullis::admin::Actor::cli(), id).await.unwrap();
        out.extend(permissions_of(&view.roles).into_iter().map(Permission::as_str));
        if view.resources.contains(&admin_aud) {
            out.extend(Permission::ALL.into_iter().map(Permission::as_str));
        }
    }
    out
}

static N: AtomicUsize = AtomicUsize::new(0);

async fn run_case(
    app: &TestApp,
    actor_roles: Vec<usize>,
    target_roles: Vec<usize>,
    client_roles: Vec<usize>,
    client_admin: bool,
    ops: Vec<Op>,
) {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let pw = || Some(SecretString::from("violet anvil tramline 2".to_owned()));
    let cli = Actor::cli();
    let actor_roles = names(&actor_roles);
    let me = format!("actor{n}");
    let me_id =
        users::create(&app.state, &cli, NewUser::parse(&me, None, None, &actor_roles, pw()).unwrap()).await.unwrap().id;
    let target = format!("target{n}");
    users::create(&app.state, &cli, NewUser::parse(&target, None, None, &names(&target_roles), pw()).unwrap())
        .await
        .unwrap();
    let admin_aud = format!("{}/admin", app.address);
    let client_id = format!("client{n}");
    let spec = ClientSpec {
        client_id: client_id.clone(),
        grants: vec!["client_credentials".into(), "authorization_code".into()],
        redirect_uris: vec!["https://app.example.com/cb".into()],
        roles: names(&client_roles),
        resources: if client_admin { vec![admin_aud.clone()] } else { vec![] },
        ..Default::default()
    };
    clients::add(&app.state, &cli, &spec).await.unwrap();

    let held: BTreeSet<&'static str> = permissions_of(&actor_roles).into_iter().map(Permission::as_str).collect();
    let principal = Principal {
        subject: me_id,
        is_client: false,
        permissions: permissions_of(&actor_roles),
        roles: actor_roles.clone(),
        auth_time: Some(app.state.clock.now().timestamp()),
    };
    let actor = Actor::for_principal(&principal, None, None);
    let mut control = Controlled { users: vec![me.clone()], clients: vec![] };
    for (i, op) in ops.iter().enumerate() {
        let who = |w: &Who| match w {
            Who::Myself => me.clone(),
            Who::TargetUser => target.clone(),
        };
        match op {
            Op::SetPassword(w) => {
                let new = SecretString::from("a password the actor chose".to_owned());
                if users::set_password(&app.state, &actor, &who(w), &new).await.is_ok() {
                    control.users.push(who(w));
                }
            }
            Op::ResetMfa(w) => {
                let _ = users::reset_mfa(&app.state, &actor, &who(w)).await;
            }
            Op::Grant(w, r) => {
                let _ = users::grant(&app.state, &actor, &who(w), ROLES[*r]).await;
            }
            Op::CreateUser(r) => {
                let name = format!("made{n}x{i}");
                let new = NewUser::parse(&name, None, None, &names(r), pw()).unwrap();
                if users::create(&app.state, &actor, new).await.is_ok() {
                    control.users.push(name);
                }
            }
            Op::AddClient(r, admin) => {
                let id = format!("made{n}c{i}");
                let spec = ClientSpec {
                    client_id: id.clone(),
                    grants: vec!["client_credentials".into()],
                    roles: names(r),
                    resources: if *admin { vec![admin_aud.clone()] } else { vec![] },
                    ..Default::default()
                };
                if clients::add(&app.state, &actor, &spec).await.is_ok() {
                    control.clients.push(id);
                }
            }
            Op::RotateSecret => {
                if clients::rotate_secret(&app.state, &actor, &client_id).await.is_ok() {
                    control.clients.push(client_id.clone());
                }
            }
            Op::ChangeRedirect => {
                let patch = ClientPatch {
                    redirect_uris: Some(vec!["https://attacker.example.com/cb".into()]),
                    ..Default::default()
                };
                if clients::update(&app.state, &actor, &client_id, patch).await.is_ok() {
                    control.clients.push(client_id.clone());
                }
            }
            Op::SetClientRoles(r) => {
                let patch = ClientPatch { roles: Some(names(r)), ..Default::default() };
                let _ = clients::update(&app.state, &actor, &client_id, patch).await;
            }
            Op::AllowAdminAudience => {
                let patch = ClientPatch { resources: Some(vec![admin_aud.clone()]), ..Default::default() };
                let _ = clients::update(&app.state, &actor, &client_id, patch).await;
            }
        }
        let got = obtained(app, &control).await;
        let gained: Vec<&&str> = got.difference(&held).collect();
        assert!(
            gained.is_empty(),
            "actor with {actor_roles:?} gained {gained:?} after {:?} (target roles {:?}, client roles {:?}, client admin audience {client_admin})",
            &ops[..=i],
            names(&target_roles),
            names(&client_roles)
        );
    }
}

#[test]
fn no_two_admin_operations_give_an_actor_a_permission_it_lacks() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = rt.block_on(async {
        let app = spawn_app().await;
        for r in ROLES.iter().filter(|r| **r != "admin") {
            roles::add(&app.state, &Actor::cli(), r, None).await.unwrap();
        }
        app
    });
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases, ..ProptestConfig::default() });
    runner
        .run(
            &(role_set(), role_set(), role_set(), any::<bool>(), proptest::collection::vec(op(), 2..=2)),
            |(actor, target, client, admin, ops)| {
                rt.block_on(run_case(&app, actor, target, client, admin, ops));
                Ok(())
            },
        )
        .unwrap();
}
