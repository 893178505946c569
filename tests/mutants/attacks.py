#!/usr/bin/env python3
# Takes each defence of issues #13, #14, #16, #17 and #18 out of the code, one at a time, runs the
# attack test that should catch it, and puts the code back. Every line must say
# CAUGHT. Usage (from the repository root): python3 tests/mutants/attacks.py [prefix...]
# Not part of CI (one rebuild per mutant: about a minute each here).
import subprocess, sys, os
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
M = [
 ("1 mfa counter cleared by password", "src/authn/second_factor.rs", "let mfa_key = counter_key(&user.id);", "let mfa_key = user.username_key.clone();", "attacks::mfa::t"),
 ("2 pending secret shown to any login", "src/authn/mfa.rs", "    let seed = random_bytes(SEED_BYTES)?;\n    let enrolment_id = random_token(16)?;",
  "    if let Some(p) = totp_enrolment::Entity::find_by_id(user_id).one(&state.db).await? {\n        let seed = state.master_key.open(&enrol_context(user_id, &p.enrolment_id), &p.secret)?;\n        let _ = binding;\n        return describe(seed, account, p.enrolment_id);\n    }\n    let seed = random_bytes(SEED_BYTES)?;\n    let enrolment_id = random_token(16)?;", "attacks::mfa::a_totp_secret"),
 ("2 move without reauth", "src/web/mfa.rs", "    if mfa::has_totp(&state.db, &cur.user.id).await? {\n        // Moving", "    if false {\n        // Moving", "attacks::mfa::moving"),
 ("3 client control", "src/admin/clients/mod.rs", "    actor.may_control_client(&roles, admin_audience)?;", "", "attacks::admin::clients_write"),
 ("3b damage told before control", "src/admin/clients/mod.rs", "    let parsed = Client::parse(row.clone(), roles.clone());\n", "    let parsed = Client::parse(row.clone(), roles.clone());\n    if let Err(d) = &parsed {\n        return Err(AdminError::Damaged(d.clone()));\n    }\n", "abac::a_damaged_client_is_refused"),
 ("4 user target", "src/admin/users/mod.rs", "    actor.may_act_on_user(&crate::storage::roles_of(conn, &u.id).await?)?;", "", "attacks::admin::narrow"),
 ("4 hand out", "src/admin/users/mod.rs", "    actor.may_hand_out(std::slice::from_ref(&role))?;", "", "attacks::admin::narrow"),
 ("5 admin audience needs mfa", "src/oauth/access.rs", "let admin_audience = resource.is_some_and(|r| r == state.admin_audience());", "let admin_audience = resource.is_some_and(|r| r == state.admin_audience()) && false;", "attacks::admin::a_password_only"),
 ("5 api second factor", "src/web/admin_api/caller.rs", "    if let Some(need) = crate::authn::mfa::administer_shortfall(state, &u.id, &amr).await? {", "    if let Some(need) = None::<crate::policy::Assurance> {", "attacks::admin::a_password_only"),
 ("7 master key check", "src/startup.rs", "        check_master_key(&state.db, &state.master_key).await?;", "", "attacks::cli::the_cli_refuses"),
 ("8 claim outside the txn", "src/oauth/grants.rs", "    let txn = crate::storage::begin_write(&state.db).await?;\n    let claimed = authorization_code::Entity::update_many()\n        .col_expr(authorization_code::Column::UsedMs, Expr::val(now_ms))\n        .filter(authorization_code::Column::CodeHash.eq(row.code_hash.as_str()))\n        .filter(authorization_code::Column::UsedMs.is_null())\n        .exec(&txn)\n        .await?;",
  "    let claimed = authorization_code::Entity::update_many()\n        .col_expr(authorization_code::Column::UsedMs, Expr::val(now_ms))\n        .filter(authorization_code::Column::CodeHash.eq(row.code_hash.as_str()))\n        .filter(authorization_code::Column::UsedMs.is_null())\n        .exec(&state.db)\n        .await?;\n    let txn = crate::storage::begin_write(&state.db).await?;", "attacks::oauth::a_replayed_code"),
 ("6b consent: decision skipped once consented", "src/oauth/authorize/flow.rs", "    let Some(cur) = cur else { return Ok(Need::Login) };\n    let now_s", "    let Some(cur) = cur else { return Ok(Need::Login) };\n    if consented {\n        return Ok(Need::Nothing);\n    }\n    let now_s", "attacks::oauth::the_consent_page"),
 ("9b both session checks", "src/oauth/grants.rs", "async fn session_alive<C: ConnectionTrait>(conn: &C, id: &str, now_ms: i64) -> Result<bool, OAuthError> {\n", "async fn session_alive<C: ConnectionTrait>(conn: &C, id: &str, now_ms: i64) -> Result<bool, OAuthError> {\n    if now_ms > 0 { let _ = (conn, id); return Ok(true); }\n", "attacks::oauth::a_code_is_worthless"),
 ("10 unlimited grace", "src/oauth/grants.rs", "                .filter(refresh_token::Column::GraceUsed.eq(false))\n", "", "attacks::oauth::parallel"),
 ("11 no body/inflight limits", "src/startup.rs", "                .wrap(from_fn(crate::web::limits::bounded_requests))\n", "", "attacks::limits::"),
 ("12 authorize bound", "src/oauth/authorize/flow.rs", "        if n > state.settings.authorize_ip_max_pending {", "        if false {", "attacks::limits::anonymous"),
 ("13 role description", "src/admin/roles.rs", "    if description.as_ref().is_some_and(|d| d.chars().any(char::is_control)) {", "    if false {", "attacks::cli::role_desc"),
 ("14 roles claim", "src/oauth/mint.rs", "    let roles_scope = g.scope.iter().any(|s| s == \"roles\");", "    let roles_scope = true;", "attacks::oauth::roles_are"),
 ("15 introspection", "src/oauth/token.rs", "            Ok(claims) if !may_introspect(caller, &claims) => inactive(),", "            Ok(claims) if false && !may_introspect(caller, &claims) => inactive(),", "attacks::oauth::protocol"),
 ("15 loopback ports", "src/oauth/authorize/request.rs", ".any(|r| redirect_matches(r, redirect_uri))", ".any(|r| r == redirect_uri)", "attacks::oauth::protocol"),
 ("16 damaged policy read as none", "src/storage/clients.rs", "let p = AccessPolicy::parse_json(text).map_err(|e| damaged(\"access_policy\", e.reason))?;", "let p = AccessPolicy::parse_json(text).unwrap_or_default();", "abac::an_unreadable"),
 ("16 damaged value written back", "src/admin/clients/update.rs", "        Err(d) if sets(&patch, d.field) => {", "        Err(d) if !d.field.is_empty() => {", "abac::an_unreadable"),
 ("17 read without capability", "src/admin/users/mod.rs", "    actor.require(Permission::UsersRead)?;\n    let u = find(&state.db, username).await?;", "    let u = find(&state.db, username).await?;", "abac::read_services"),
 ("18 malformed basic uncounted", "src/web/token.rs", "        Err(e) => Err(e),\n    };", "        Err(e) => return Err(e),\n    };", "abuse::malformed_basic"),
 ("19 user page without users:read", "src/web/admin/user_actions.rs", "        ) if a.can(Permission::UsersRead) => {", "        ) if true => {", "admin_pages::a_refused_change"),
 # Passkeys (#16): nothing weaker than the account's passkey gets through.
 ("20 passkey account: the password alone reaches a TOTP set-up", "src/web/login.rs", "            let strongest = mfa::strongest_factor(&state.db, &user.id).await?;", "            let strongest = if mfa::has_totp(&state.db, &user.id).await? { crate::policy::Assurance::MultiFactor } else { crate::policy::Assurance::Password };", "passkey_policy::with_passkeys_off"),
 ("21 administering with any second factor", "src/authn/mfa.rs", "let need = required_for(state, &state.db, user_id).await?.max(Assurance::MultiFactor);", "let need = Assurance::MultiFactor;", "passkey_policy::once_an_admin"),
 ("22 refresh without the assurance check", "src/oauth/grants.rs", "    if crate::policy::Assurance::of(&amr) < need {", "    if false && crate::policy::Assurance::of(&amr) < need {", "passkey_policy::once_an_admin"),
 ("23 TOTP planted by a weaker session", "src/web/mfa.rs", "    if !may_change_factors(&state, &cur).await? {\n        // A first", "    if false {\n        // A first", "passkey_policy::a_weaker"),
 ("24 a code where a role needs a passkey ends at acr 2", "src/web/mfa.rs", "    if (o.required >= crate::policy::Assurance::PhishingResistant || lost_key) && state.webauthn.is_some() {", "    if lost_key && state.webauthn.is_some() {", "passkey_policy::where_a_role"),
 ("25 a passkey added by a weaker session", "src/web/passkey.rs", "    if !super::reauth::may_change_factors(state, &cur).await? {", "    if false {", "passkeys::an_old_or_weaker"),
 ("26 a passkey removed by a weaker session", "src/web/passkey_manage.rs", "    if !super::reauth::may_change_factors(&state, &cur).await? {", "    if false {", "passkeys::removing_a_passkey"),
 ("27 a code confirms where the passkey is needed", "src/web/admin/reauth.rs", "    Ok(need >= crate::policy::Assurance::PhishingResistant && state.webauthn.is_some())", "    Ok(need >= crate::policy::Assurance::PhishingResistant && state.webauthn.is_none())", "passkey_policy::an_administrator_with"),
 ("28 a lost key's recovery code ends at acr 2", "src/web/mfa.rs", "    let lost_key = o.passkey && checked == Some(mfa::CodeCheck::Recovery);", "    let lost_key = false;", "passkey_policy::a_recovery_code"),
 ("29 a kept set-up challenge still works", "src/web/mfa.rs", "            if purpose == ChallengePurpose::Enrol\n", "            if false && purpose == ChallengePurpose::Enrol\n", "passkey_policy::a_set_up_kept"),
 ("30 an app set up after a lost key", "src/web/mfa.rs", "        c.purpose == ChallengePurpose::Enrol && !(passkey", "        !(passkey", "passkey_policy::a_recovery_code_of"),
 ("31 phishable factors mint recovery codes", "src/web/reauth.rs", "    if strongest >= Assurance::PhishingResistant && !may_change_factors(state, cur).await? {", "    if false {", "passkey_policy::phishable"),
 ("32 own factors removed through administration", "src/admin/mod.rs", "        if self.name.strip_prefix(\"user:\") == Some(user_id) {", "        if false {", "passkey_policy::phishable"),
 # Console (#17): what needs a recent login, one rule for pages and API; the last administrator.
 ("33 API deletions without a recent login", "src/web/admin_api/caller.rs", "let actor = if P::FRESH { caller.fresh(P::PERMISSION).await? } else { caller.may(P::PERMISSION).await? };", "let actor = caller.may(P::PERMISSION).await?;", "console::deletions_secrets"),
 ("34 client keys and redirects are no credentials", "src/admin/clients/spec.rs", "        self.jwks.is_some()\n", "        false && self.jwks.is_some()\n", "console::deletions_secrets"),
 ("35 a client deleted without its id typed", "src/web/admin/clients_pages.rs", "    if form.confirm.as_deref().map(str::trim) != Some(client_id.as_str()) {", "    if false {", "console::clients_are_edited"),
 ("36 a new secret without a recent login", "src/web/admin/clients_pages.rs", "    if !a.recent(&state) {\n        return Ok(reauth_first(&format!(\"/admin/clients/{client_id}\")));\n    }\n    match clients::rotate_secret", "    match clients::rotate_secret", "console::deletions_secrets"),
 ("37 an account erased without its name typed", "src/web/admin/user_actions.rs", "    let mistyped = (f.confirm.trim() != u).then(", "    let mistyped = (false).then(", "console::an_account_is_erased"),
 ("38 the last administrator erased twice at once (run with PORTCULLIS_TEST_DATABASE_URL for PostgreSQL)", "src/admin/users/mod.rs", "        conn.execute_unprepared(\"SELECT pg_advisory_xact_lock(7358201)\").await?;", "", "console::two_administrators"),
 # Account lifecycle (#18): links, forgot password, addresses.
 ("39 forgot answers after the mail", "src/web/links.rs", "    tokio::spawn(recovery::forgot(state.get_ref().clone(), who, client_info::origin(&state, &req)));", "    recovery::forgot(state.get_ref().clone(), who, client_info::origin(&state, &req)).await;", "lifecycle::the_forgot_page"),
 ("40 a link reaches further than when it was made", "src/admin/password.rs", "    if now_held.iter().any(|p| !reach.iter().any(|r| r == p.as_str())) {", "    if false {", "lifecycle::a_link_cannot"),
 ("41 other links survive a password change", "src/admin/password.rs", "    account_link::Entity::delete_many().filter(account_link::Column::UserId.eq(u.id.as_str())).exec(&txn).await?;", "", "lifecycle::outstanding_links"),
 ("42 a reset mailed to an unproved address", "src/lifecycle/recovery.rs", "    let Some(addr) = u.email.clone().filter(|_| u.email_verified) else {", "    let Some(addr) = u.email.clone() else {", "lifecycle::forgot_password"),
 ("43 a username passes for an address at sign-up", "src/lifecycle/signup.rs", "    if name.as_str().contains('@') && !name.as_str().eq_ignore_ascii_case(addr.as_str()) {", "    if false {", "lifecycle::a_username_cannot"),
 ("44 a username lookalike catches a reset", "src/lifecycle/recovery.rs", "    if who.contains('@') && who.len() <= 254 {", "    if false {", "lifecycle::a_username_cannot"),
 ("45 no mail limit on forgot", "src/lifecycle/recovery.rs", "    match super::admit(state, &state.db, Some(&u.id), &addr).await {", "    match Ok::<(), DeliverError>(()) {", "lifecycle::mail_to_one"),
 ("46 a mailed invitation is also shown", "src/lifecycle/recovery.rs", "        return Ok(IssuedLink { url: None, expires_at", "        return Ok(IssuedLink { url: Some(link.url.clone()), expires_at", "lifecycle::an_invitation_mailed"),
 # Upstream identity providers (#18): the relying party's checks and the account rules.
 ("48 a callback from another browser", "src/federation/mod.rs", "if claimed.rows_affected != 1 || row.provider != p.id || !live || !bound || !same_session {", "if claimed.rows_affected != 1 || row.provider != p.id || !live || !same_session {", "federation::a_tampered_state"),
 ("49 the response's iss unchecked", "src/federation/mod.rs", "        && iss != meta.issuer().as_str()", "        && false", "federation::a_tampered_state"),
 ("50 an account made beside one with the address", "src/federation/accounts.rs", "                && user::Entity::find().filter(crate::storage::email_matches(addr)).one(&txn).await?.is_some()", "                && false", "federation::an_existing_account"),
 ("51 group roles never taken back", "src/federation/accounts.rs", "    for r in before.iter().filter(|r| !given.contains(r)) {", "    for r in before.iter().filter(|_| false) {", "federation::a_first_upstream"),
 ("52 a role granted here taken back", "src/federation/accounts.rs", "        if !held || before.contains(r) {", "        if true {", "federation::a_role_granted"),
 ("53 one upstream method counts as two", "src/federation/mod.rs", "let two_step = amr.iter().any(|a| a == \"mfa\")", "let two_step = amr.iter().any(|a| a == \"mfa\" || a == \"otp\")", "federation::a_trusted_provider_naming"),
 ("54 a link finished by another session", "src/federation/mod.rs", "    let same_session = row.link_session.is_none() || row.link_session.as_deref() == browser.session_id;", "    let same_session = true;", "federation::a_link_needs"),
 ("55 a link with an old sign-in and the password", "src/web/upstream.rs", "    if !super::reauth::may_change_factors(&state, &cur).await? {", "    if false {", "federation::a_link_needs"),
 ("56 the provider skips the account's own factor", "src/authn/mfa.rs", "    if first >= strongest.max(required) {", "    if first >= required {", "federation::without_trust"),
 ("47 a disabled account keeps its links", "src/admin/users/mod.rs", "        crate::storage::entities::account_link::Entity::delete_many()\n            .filter(crate::storage::entities::account_link::Column::UserId.eq(id.as_str()))\n            .exec(&txn)\n            .await?;", "", "lifecycle::outstanding_links"),
]
only = sys.argv[1:]
# A mutant whose code moved would otherwise pass silently: every pattern
# must still be found before anything runs.
lost = [name for name, f, old, _, _ in M if (not only or any(name.startswith(o) for o in only)) and old not in open(f).read()]
if lost:
    sys.exit("PATTERN NOT FOUND (update the mutant to where its code moved): " + "; ".join(lost))
for name, f, old, new, filt in M:
    if only and not any(name.startswith(o) for o in only): continue
    src = open(f).read()
    if old not in src:
        print(f"{name}: PATTERN NOT FOUND", flush=True); continue
    open(f,'w').write(src.replace(old, new, 1))
    try:
        try:
            r = subprocess.run(["cargo","test","--test","api",filt], capture_output=True, text=True, env=dict(os.environ, RUST_BACKTRACE="0"), timeout=900)
        except subprocess.TimeoutExpired:
            print(f"{name}: CAUGHT (the attack test hung past 15 min)", flush=True); continue
        out = r.stdout + r.stderr
        res = [l for l in out.splitlines() if l.startswith("test result") or "error[" in l or "could not compile" in l]
        verdict = "CAUGHT (test failed)" if r.returncode != 0 and "test result" in out else ("BUILD FAILED" if r.returncode != 0 else "NOT CAUGHT")
        print(f"{name}: {verdict} :: {res[-1] if res else ''}", flush=True)
    finally:
        open(f,'w').write(src)
