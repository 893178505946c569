//! Outgoing mail: invitations, reset and verification links, and notices
//! ("your password was changed"). One `Mailer` built from the settings at
//! start (a misconfiguration is a start-up error, not a failed send later),
//! sending through SMTP (lettre: STARTTLS required or implicit TLS; plain
//! text only to a loopback relay) or, for development, into a directory of
//! `.eml` files. Every mail has a plain-text and an HTML part, rendered from
//! the askama templates `templates/mail/message.{txt,html}`.

use std::time::Duration;

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{Settings, SmtpTls};

/// The longest one mail may take to send, whatever the server does.
const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// One mail: a subject, paragraphs, at most one link to follow, a footnote.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub paragraphs: Vec<String>,
    /// (button label, URL)
    pub action: Option<(String, String)>,
    pub footnote: Option<String>,
}

#[derive(Template)]
#[template(path = "mail/message.txt")]
struct TextBody<'a> {
    product: &'a str,
    mail: &'a Mail,
}

#[derive(Template)]
#[template(path = "mail/message.html")]
struct HtmlBody<'a> {
    product: &'a str,
    mail: &'a Mail,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the address {0:?} cannot receive mail")]
    Address(String),
    #[error("the mail could not be built: {0}")]
    Build(String),
    #[error("the mail server refused or could not be reached: {0}")]
    Send(String),
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

pub struct Mailer {
    from: Mailbox,
    product: String,
    transport: Transport,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::File(_) => "file",
        };
        write!(f, "Mailer({kind}, from {})", self.from)
    }
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Mailer {
    /// The mailer the settings describe; `Ok(None)` when mail is off
    /// (neither `smtp_host` nor `mail_dir`). `Err` names the setting.
    pub fn from_settings(s: &Settings) -> Result<Option<Self>, String> {
        let transport = match (&s.smtp_host, &s.mail_dir) {
            (None, None) => {
                if s.mail_from.is_some() || s.smtp_username.is_some() {
                    return Err("mail_from / smtp_username are set but neither smtp_host nor mail_dir is".into());
                }
                return Ok(None);
            }
            (Some(_), Some(_)) => return Err("set smtp_host or mail_dir, not both".into()),
            (None, Some(dir)) => {
                if !dir.is_dir() {
                    return Err(format!("mail_dir {} is not a directory", dir.display()));
                }
                Transport::File(AsyncFileTransport::<Tokio1Executor>::new(dir))
            }
            (Some(host), None) => Transport::Smtp(smtp(s, host)?),
        };
        let from_text = s.mail_from.as_deref().ok_or("mail_from is required when mail is on")?;
        let from: Mailbox =
            from_text.parse().map_err(|e| format!("mail_from {from_text:?} is not a mail address: {e}"))?;
        Ok(Some(Self { from, product: s.product_name.clone(), transport }))
    }

    /// Renders and sends one mail (or writes it, with `mail_dir`).
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to: Mailbox = mail.to.parse().map_err(|_| MailError::Address(mail.to.clone()))?;
        let text = TextBody { product: &self.product, mail }.render().map_err(|e| MailError::Build(e.to_string()))?;
        let html = HtmlBody { product: &self.product, mail }.render().map_err(|e| MailError::Build(e.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| MailError::Build(e.to_string()))?;
        // A server that accepts and then says nothing must not hold a task
        // (and its connection) forever: the whole send has a deadline.
        let sent = tokio::time::timeout(SEND_DEADLINE, async {
            match &self.transport {
                Transport::Smtp(t) => t.send(message).await.map(drop).map_err(|e| MailError::Send(e.to_string())),
                Transport::File(t) => t.send(message).await.map(drop).map_err(|e| MailError::Send(e.to_string())),
            }
        })
        .await;
        sent.unwrap_or_else(|_| Err(MailError::Send(format!("no answer within {} s", SEND_DEADLINE.as_secs()))))
    }
}

/// TLS to `host`: its certificate must chain to the system's roots or to
/// `smtp_ca_file`, and name `host`.
fn tls_parameters(s: &Settings, host: &str) -> Result<TlsParameters, String> {
    let mut b = TlsParameters::builder(host.to_owned());
    if let Some(f) = &s.smtp_ca_file {
        let pem = std::fs::read(f).map_err(|e| format!("smtp_ca_file {}: {e}", f.display()))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| format!("smtp_ca_file {}: {e}", f.display()))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| format!("smtp_host {host:?}: TLS: {e}"))
}

fn smtp(s: &Settings, host: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match s.smtp_tls {
        // STARTTLS required (never a plain-text fallback), or TLS from the first byte.
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(587)
            .tls(Tls::Required(tls_parameters(s, host)?)),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(465)
            .tls(Tls::Wrapper(tls_parameters(s, host)?)),
        SmtpTls::None => {
            if !is_loopback_host(host) {
                return Err(format!(
                    "smtp_tls = \"none\" sends passwords and links in plain text; it is allowed only to a loopback relay, not {host:?} (use starttls or tls)"
                ));
            }
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(25)
        }
    };
    let mut builder = builder.timeout(Some(Duration::from_secs(15)));
    if let Some(port) = s.smtp_port {
        builder = builder.port(port);
    }
    let password = match (&s.smtp_password, &s.smtp_password_file) {
        (Some(_), Some(_)) => return Err("set smtp_password or smtp_password_file, not both".into()),
        (Some(p), None) => Some(p.expose_secret().to_owned()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("smtp_password_file {}: {e}", f.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    match (&s.smtp_username, password) {
        (Some(u), Some(p)) => builder = builder.credentials(Credentials::new(u.clone(), p)),
        (None, None) => {}
        (Some(_), None) => return Err("smtp_username is set without smtp_password(_file)".into()),
        (None, Some(_)) => return Err("smtp_password is set without smtp_username".into()),
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Settings)) -> Result<Option<Mailer>, String> {
        let mut s = Settings::default();
        f(&mut s);
        Mailer::from_settings(&s)
    }

    #[tokio::test]
    async fn misconfigured_mail_is_named_at_start() {
        assert!(with(|_| {}).unwrap().is_none(), "no mail settings: mail is off");
        let e = with(|s| s.smtp_host = Some("mail.example.com".into())).unwrap_err();
        assert!(e.contains("mail_from is required"), "{e}");
        let e = with(|s| {
            s.smtp_host = Some("mail.example.com".into());
            s.mail_from = Some("not an address".into());
        })
        .unwrap_err();
        assert!(e.contains("mail_from"), "{e}");
        let e = with(|s| {
            s.smtp_host = Some("mail.example.com".into());
            s.smtp_tls = SmtpTls::None;
            s.mail_from = Some("id@example.com".into());
        })
        .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = with(|s| {
            s.smtp_host = Some("mail.example.com".into());
            s.mail_from = Some("id@example.com".into());
            s.smtp_username = Some("id".into());
        })
        .unwrap_err();
        assert!(e.contains("smtp_password"), "{e}");
        let ok = with(|s| {
            s.smtp_host = Some("127.0.0.1".into());
            s.smtp_tls = SmtpTls::None;
            s.mail_from = Some("Portcullis <id@example.com>".into());
        });
        assert!(ok.unwrap().is_some());
    }
}
