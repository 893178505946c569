//! The mail the app sends, as the tests read it: a real SMTP server
//! (tests/mail/sink.py, aiosmtpd) when its Python is installed — CI makes it
//! mandatory — and otherwise the app's own file transport (`mail_dir`), so the
//! lifecycle tests still run on a bare machine. Both leave one raw RFC 5322
//! message per file; [`Mailbox`] parses them (multipart, quoted-printable or
//! base64 text part) the same way.

use std::ffi::OsString as OsArg;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use portcullis::config::{Settings, SmtpTls};
use tokio::io::{AsyncBufReadExt, BufReader};

pub struct Mailbox {
    dir: tempfile::TempDir,
    smtp_port: Option<u16>,
    _sink: Option<tokio::process::Child>,
}

/// One mail as received.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// The plain-text part, decoded.
    pub text: String,
    /// The HTML part, decoded.
    pub html: String,
}

impl Mail {
    /// The first link in the text that starts with `prefix` (a full URL).
    pub fn link(&self, prefix: &str) -> String {
        self.text
            .split_whitespace()
            .find(|w| w.starts_with(prefix))
            .unwrap_or_else(|| panic!("no link {prefix}… in mail {:?}:\n{}", self.subject, self.text))
            .to_owned()
    }
}

fn python() -> String {
    std::env::var("PORTCULLIS_RECIPE_PYTHON").unwrap_or_else(|_| "target/recipes-venv/bin/python".into())
}

fn smtp_available() -> bool {
    std::process::Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Mailbox {
    pub async fn start() -> Self {
        Self::start_with(&[]).await.0
    }

    /// The SMTP server offering STARTTLS with `cert`/`key` (and refusing
    /// mail before it); `None` where the server cannot run here (and the
    /// test is not required).
    pub async fn start_starttls(cert: &Path, key: &Path) -> Option<Self> {
        let args = [OsArg::from("--starttls"), cert.as_os_str().to_owned(), key.as_os_str().to_owned()];
        let (m, real) = Self::start_with(&args).await;
        real.then_some(m)
    }

    async fn start_with(extra: &[OsArg]) -> (Self, bool) {
        let dir = tempfile::tempdir().unwrap();
        if !smtp_available() {
            assert!(
                std::env::var("PORTCULLIS_BROWSER_TESTS").as_deref() != Ok("1"),
                "the SMTP server for the mail tests is required: {} -m pip install -r tests/mail/requirements.txt",
                python()
            );
            return (Self { dir, smtp_port: None, _sink: None }, false);
        }
        let mut child = tokio::process::Command::new(python())
            .arg("tests/mail/sink.py")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP sink");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the SMTP sink did not start")
            .unwrap()
            .unwrap_or_default();
        let port = first.strip_prefix("listening on ").and_then(|p| p.parse().ok()).expect("sink port");
        (Self { dir, smtp_port: Some(port), _sink: Some(child) }, true)
    }

    /// The port of the real SMTP server, if it runs.
    pub fn port(&self) -> Option<u16> {
        self.smtp_port
    }

    /// Where the received messages are (one raw `.eml` file each).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Points the app's mail settings here.
    pub fn configure(&self, s: &mut Settings) {
        s.mail_from = Some("Portcullis <id@example.com>".into());
        match self.smtp_port {
            Some(port) => {
                s.smtp_host = Some("127.0.0.1".into());
                s.smtp_port = Some(port);
                s.smtp_tls = SmtpTls::None;
            }
            None => s.mail_dir = Some(self.dir.path().to_path_buf()),
        }
    }

    /// The same settings as `PORTCULLIS_*` variables (for the CLI).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = vec![("PORTCULLIS_MAIL_FROM".to_owned(), "Portcullis <id@example.com>".to_owned())];
        match self.smtp_port {
            Some(port) => {
                v.push(("PORTCULLIS_SMTP_HOST".into(), "127.0.0.1".into()));
                v.push(("PORTCULLIS_SMTP_PORT".into(), port.to_string()));
                v.push(("PORTCULLIS_SMTP_TLS".into(), "none".into()));
            }
            None => v.push(("PORTCULLIS_MAIL_DIR".into(), self.dir.path().display().to_string())),
        }
        v
    }

    /// Every mail so far, oldest first.
    pub fn all(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort_by_key(|p| (std::fs::metadata(p).and_then(|m| m.modified()).ok(), p.clone()));
        files.iter().map(|p| parse(p)).collect()
    }

    /// The mails to `to` so far.
    pub fn to(&self, to: &str) -> Vec<Mail> {
        self.all().into_iter().filter(|m| m.to.contains(to)).collect()
    }

    /// Waits until `n` mails to `to` have arrived (mail is sent after the
    /// page answers) and returns them.
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<Mail> {
        for _ in 0..200 {
            let got = self.to(to);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} mail(s) to {to}; have {:?}", self.to(to).iter().map(|m| &m.subject).collect::<Vec<_>>());
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Unfolds header continuation lines.
fn unfold(head: &str) -> String {
    head.replace("\r\n", "\n").replace("\n ", " ").replace("\n\t", " ")
}

fn decode(cte: &str, body: &str) -> String {
    match cte.to_ascii_lowercase().as_str() {
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).unwrap()).unwrap()
        }
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "").replace("=\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                if bytes[i] == b'='
                    && let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8(out).unwrap()
        }
        _ => body.to_owned(),
    }
}

fn parse(path: &Path) -> Mail {
    let raw = std::fs::read_to_string(path).unwrap().replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap();
    let head = unfold(head);
    let to = header(&head, "To").unwrap_or_default().to_owned();
    let subject = header(&head, "Subject").unwrap_or_default().to_owned();
    let ctype = header(&head, "Content-Type").unwrap_or_default();
    let boundary = ctype
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_owned())
        .expect("a multipart mail");
    let (mut text, mut html) = (String::new(), String::new());
    for part in body.split(&format!("--{boundary}")) {
        let Some((phead, pbody)) = part.trim_start_matches('\n').split_once("\n\n") else { continue };
        let phead = unfold(phead);
        let cte = header(&phead, "Content-Transfer-Encoding").unwrap_or("7bit");
        let pct = header(&phead, "Content-Type").unwrap_or_default();
        if pct.starts_with("text/plain") {
            text = decode(cte, pbody);
        } else if pct.starts_with("text/html") {
            html = decode(cte, pbody);
        }
    }
    assert!(!text.is_empty() && !html.is_empty(), "a plain-text and an HTML part in {}", path.display());
    Mail { to, subject, text, html }
}
