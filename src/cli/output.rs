//! What the CLI prints: JSON with `--json`, short human text otherwise.

use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::json;

use crate::admin::clients::{ClientView, Created};
use crate::admin::roles::RoleView;
use crate::admin::users::UserView;
use crate::tokens::keys::KeyView;

pub struct Output {
    pub json: bool,
}

fn print_json<T: Serialize + ?Sized>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

impl Output {
    pub fn message(&self, text: &str) {
        if self.json {
            print_json(&json!({ "ok": true, "message": text }));
        } else {
            println!("{text}");
        }
    }

    pub fn registration_token(&self, token: &str) {
        if self.json {
            return print_json(&json!({ "token": token }));
        }
        println!("{token}");
        eprintln!("(single use, valid 7 days: send it as a bearer token to POST /register; shown once)");
    }

    pub fn applied(&self, a: &crate::provision::Applied) {
        if self.json {
            return print_json(a);
        }
        for c in &a.changes {
            match c.action {
                "create" if c.kind == "user" => println!("+ user {} (gets an invitation)", c.name),
                "create" => {
                    println!("+ {} {}", c.kind, c.name);
                    for (field, v) in &c.fields {
                        println!("    {field}: {}", v[1]);
                    }
                }
                "delete" => println!("- {} {}", c.kind, c.name),
                "disable" => println!("- {} {} (disabled, not erased)", c.kind, c.name),
                action => {
                    let note = if action == "adopt" { " (now managed by the file)" } else { "" };
                    println!("~ {} {}{note}", c.kind, c.name);
                    for (field, v) in &c.fields {
                        println!("    {field}: {} → {}", v[0], v[1]);
                    }
                }
            }
        }
        for i in &a.invitations {
            println!(
                "invitation for {}: {} (single use, until {})",
                i.username,
                i.url,
                i.expires_at.format("%Y-%m-%d %H:%M UTC")
            );
        }
        let n = a.changes.len();
        match (n, a.dry_run) {
            (0, _) => println!("no changes: the database matches {}", a.file),
            (_, true) => println!("{n} changes (dry run: nothing written)"),
            (_, false) => println!("{n} changes applied"),
        }
    }

    pub fn rotation(&self, r: &crate::admin::master_key::Rotation) {
        if self.json {
            return print_json(r);
        }
        println!(
            "sealed again under the new key: {} data keys, {} signing keys, {} TOTP seeds, {} TOTP enrolments ({} were already)",
            r.data_keys, r.signing_keys, r.totp_credentials, r.totp_enrolments, r.already_rotated
        );
        if r.complete {
            println!(
                "complete: every secret opens with the new key. Make it PORTCULLIS_MASTER_KEY_FILE everywhere, then remove the old one (PORTCULLIS_MASTER_KEY_SECONDARY_FILE) and destroy it"
            );
        }
    }

    pub fn restored(&self, r: &super::restore::Restored) {
        if self.json {
            return print_json(r);
        }
        println!(
            "restored into {}: {} users, {} clients, {} signing keys, {} audit records",
            r.database.display(),
            r.users,
            r.clients,
            r.signing_keys,
            r.audit_records
        );
        self.audit_verdict(&r.audit_chain);
        println!("start the server with the same master key; the backup file was not changed");
    }

    pub fn audit_verdict(&self, v: &crate::storage::audit_chain::Verdict) {
        use crate::storage::audit_chain::Verdict;
        if self.json {
            return print_json(v);
        }
        if let Verdict::Intact { records, redacted, head, unsealed } = v {
            let from = head.pruned_through + 1;
            println!("audit chain intact: {records} records ({from}–{}), head {}", head.seq, head.hash);
            if head.pruned_through > 0 {
                println!("records 1–{} were removed by retention", head.pruned_through);
            }
            if *redacted > 0 {
                println!("{redacted} of them were redacted by erasures (their links checked, their content not)");
            }
            if *unsealed > 0 {
                println!("{unsealed} records were written while checking and are not sealed yet");
            }
        }
    }

    pub fn user(&self, u: &UserView) {
        if self.json {
            return print_json(u);
        }
        println!("username:   {}", u.username);
        println!("id:         {}", u.id);
        println!("email:      {}", or_dash(u.email.as_deref()));
        println!("name:       {}", or_dash(u.name.as_deref()));
        println!("disabled:   {}", u.disabled);
        println!("password:   {}", if u.has_password { "set" } else { "not set" });
        println!("mfa:        {}", if u.mfa { "totp" } else { "none" });
        if let Some(ms) = u.locked_until_ms {
            let until = chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_default();
            println!("locked:     until {until} (portcullis user unlock {})", u.username);
        }
        println!("roles:      {}", if u.roles.is_empty() { "-".into() } else { u.roles.join(", ") });
        for (k, v) in &u.attributes {
            println!("attribute:  {k}={v}");
        }
        println!("created:    {}", u.created_at.to_rfc3339());
    }

    pub fn upstream(&self, list: &[crate::admin::users::UpstreamView]) {
        if self.json {
            return print_json(list);
        }
        for i in list {
            let last = i.last_used_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into());
            println!(
                "{}\t{}\t{}\tlinked {}\tlast used {last}",
                i.provider,
                i.subject,
                or_dash(i.email.as_deref()),
                i.linked_at.to_rfc3339()
            );
        }
    }

    /// A single-use link: shown once, here (only its hash is stored).
    pub fn link(&self, l: &crate::lifecycle::recovery::IssuedLink) {
        if self.json {
            return print_json(l);
        }
        match (&l.url, &l.sent_to) {
            (Some(url), _) => println!("{url}"),
            (None, Some(to)) => println!("mailed to {to}"),
            (None, None) => {}
        }
        eprintln!("note: the link works once, until {}", l.expires_at.to_rfc3339());
    }

    /// Recovery codes are shown once, here.
    pub fn passkeys(&self, list: &[crate::admin::users::PasskeyView]) {
        if self.json {
            return print_json(list);
        }
        if list.is_empty() {
            println!("no passkeys");
        }
        for p in list {
            let used = p.last_used_at.map_or_else(|| "never used".to_owned(), |t| format!("last used {t}"));
            println!("{}  {} ({}, added {}, {used})", p.credential_id, p.name, p.kind, p.created_at);
        }
    }

    pub fn recovery_codes(&self, username: &str, codes: &[String]) {
        if self.json {
            return print_json(&json!({ "username": username, "recovery_codes": codes }));
        }
        println!("TOTP secret imported for {username}. Recovery codes (shown once; give them to the user):");
        for c in codes {
            println!("  {c}");
        }
    }

    pub fn users(&self, list: &[UserView]) {
        if self.json {
            return print_json(list);
        }
        for u in list {
            let state = if u.disabled { "disabled" } else { "active" };
            println!("{}\t{}\t{}\t{}", u.username, u.id, state, u.roles.join(","));
        }
    }

    pub fn role(&self, r: &RoleView) {
        if self.json {
            return print_json(r);
        }
        println!("role {} created", r.name);
    }

    pub fn roles(&self, list: &[RoleView]) {
        if self.json {
            return print_json(list);
        }
        for r in list {
            println!("{}\t{}", r.name, or_dash(r.description.as_deref()));
        }
    }

    pub fn client(&self, c: &ClientView) {
        if self.json {
            return print_json(c);
        }
        println!("client_id:      {}", c.client_id);
        println!("name:           {}", or_dash(c.name.as_deref()));
        println!("type:           {}", if c.public { "public" } else { "confidential" });
        println!("grant types:    {}", c.grant_types.join(", "));
        for u in &c.redirect_uris {
            println!("redirect uri:   {u}");
        }
        for u in &c.post_logout_redirect_uris {
            println!("post-logout:    {u}");
        }
        println!("scopes:         {}", c.scopes.join(" "));
        println!("roles:          {}", c.roles.join(", "));
        println!("first party:    {}", c.first_party);
        println!("pkce:           {}", c.pkce);
        println!("id token alg:   {}", c.id_token_alg);
        println!("require mfa:    {}", c.require_mfa);
    }

    pub fn clients(&self, list: &[ClientView]) {
        if self.json {
            return print_json(list);
        }
        for c in list {
            let kind = if c.public { "public" } else { "confidential" };
            println!("{}\t{}\t{}", c.client_id, kind, c.grant_types.join(","));
        }
    }

    /// A new or rotated client: the secret is printed here and never again.
    pub fn created_client(&self, created: &Created) {
        let secret = created.secret.as_ref().map(|s| s.expose_secret());
        if self.json {
            return print_json(&json!({
                "client_id": created.client.client_id,
                "client_secret": secret,
                "client": created.client,
            }));
        }
        println!("client_id:     {}", created.client.client_id);
        match secret {
            Some(s) => {
                println!("client_secret: {s}");
                println!("(the secret is shown once; store it now)");
            }
            None if created.client.public => println!("public client: no secret"),
            None => println!("no secret: the client authenticates with its keys (private_key_jwt)"),
        }
    }

    pub fn keys(&self, list: &[KeyView]) {
        if self.json {
            return print_json(list);
        }
        for k in list {
            let state = if k.active {
                "active".to_owned()
            } else {
                format!("retired {}", k.retired_at.map(|t| t.to_rfc3339()).unwrap_or_default())
            };
            println!("{}\t{}\t{}\t{}", k.kid, k.alg, state, k.created_at.to_rfc3339());
        }
    }
}
