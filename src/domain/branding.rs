//! Branding from configuration: the product name, a logo, the accent colours
//! and the footer — checked at start (a colour that would make buttons or
//! links unreadable is refused with its contrast ratio).

use std::path::Path;

/// The largest logo file served.
pub const MAX_LOGO_BYTES: usize = 256 * 1024;

/// The light page backgrounds and button text the light accent must contrast
/// with, and the dark page background the dark accent must (see portcullis.css).
const LIGHT_BACKGROUNDS: [(u8, u8, u8); 3] = [(0xff, 0xff, 0xff), (0xf6, 0xf7, 0xf9), (0xff, 0xff, 0xff)];
const DARK_BACKGROUNDS: [(u8, u8, u8); 2] = [(0x0f, 0x12, 0x16), (0x16, 0x1b, 0x22)];
/// WCAG 2.2 AA for normal text.
const MIN_CONTRAST: f64 = 4.5;

#[derive(Debug, Clone)]
pub struct Logo {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

#[derive(Debug, Clone)]
pub struct Branding {
    pub product_name: String,
    /// Empty: no footer.
    pub footer: String,
    pub logo: Option<Logo>,
    pub accent: Option<String>,
    pub accent_dark: Option<String>,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            product_name: "Portcullis".into(),
            footer: "Protected by Portcullis".into(),
            logo: None,
            accent: None,
            accent_dark: None,
        }
    }
}

fn rgb(field: &str, v: &str) -> Result<(u8, u8, u8), String> {
    let hex = v.strip_prefix('#').filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let Some(h) = hex else {
        return Err(format!("{field}: {v:?} is not a colour like #0b5cad"));
    };
    let byte = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| format!("{field}: {v:?} is not a colour"));
    Ok((byte(0)?, byte(2)?, byte(4)?))
}

/// WCAG relative luminance.
fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

/// WCAG contrast ratio of two colours (1 to 21).
pub fn contrast(a: (u8, u8, u8), b: (u8, u8, u8)) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

fn readable(field: &str, v: &str, against: &[(u8, u8, u8)], what: &str) -> Result<String, String> {
    let c = rgb(field, v)?;
    let worst = against.iter().map(|bg| contrast(c, *bg)).fold(f64::INFINITY, f64::min);
    if worst < MIN_CONTRAST {
        return Err(format!(
            "{field}: {v} has a contrast of {worst:.1}:1 with {what}; WCAG AA needs {MIN_CONTRAST}:1 — choose a {}",
            if against == LIGHT_BACKGROUNDS.as_slice() { "darker colour" } else { "lighter colour" }
        ));
    }
    Ok(v.to_ascii_lowercase())
}

impl Branding {
    /// Checks the branding settings and reads the logo.
    pub fn from_settings(
        product_name: &str,
        logo_file: Option<&Path>,
        accent: Option<&str>,
        accent_dark: Option<&str>,
        footer: Option<&str>,
    ) -> Result<Self, String> {
        let name = product_name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err("product_name: 1 to 64 characters without control characters".into());
        }
        let footer = match footer {
            Some(f) if f.chars().count() > 200 || f.chars().any(char::is_control) => {
                return Err("footer_text: at most 200 characters without control characters".into());
            }
            Some(f) => f.trim().to_owned(),
            None => format!("Protected by {name}"),
        };
        let logo = match logo_file {
            None => None,
            Some(path) => {
                let content_type =
                    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
                        Some("svg") => "image/svg+xml",
                        Some("png") => "image/png",
                        Some("webp") => "image/webp",
                        _ => return Err(format!("logo_file: {} must be an .svg, .png or .webp file", path.display())),
                    };
                let bytes =
                    std::fs::read(path).map_err(|e| format!("logo_file: cannot read {}: {e}", path.display()))?;
                if bytes.is_empty() || bytes.len() > MAX_LOGO_BYTES {
                    return Err(format!("logo_file: {} must be 1 byte to 256 KiB", path.display()));
                }
                Some(Logo { bytes, content_type })
            }
        };
        let accent = accent
            .map(|v| readable("accent_color", v, &LIGHT_BACKGROUNDS, "the light page or white button text"))
            .transpose()?;
        let accent_dark =
            accent_dark.map(|v| readable("accent_color_dark", v, &DARK_BACKGROUNDS, "the dark page")).transpose()?;
        Ok(Self { product_name: name.to_owned(), footer, logo, accent, accent_dark })
    }

    /// The stylesheet carrying the accent colours (`/branding.css`).
    pub fn stylesheet(&self) -> String {
        let mut css = String::from("/* Branding from the configuration (accent_color, accent_color_dark). */\n");
        if let Some(a) = &self.accent {
            css.push_str(&format!(":root {{ --accent: {a}; --accent-fg: #ffffff; }}\n"));
        }
        if let Some(a) = &self.accent_dark {
            css.push_str(&format!(
                "@media (prefers-color-scheme: dark) {{ :root {{ --accent: {a}; --accent-fg: #0b0d10; }} }}\n"
            ));
        }
        css
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_accents_are_refused_with_their_contrast() {
        let b = |a: Option<&str>, d: Option<&str>| Branding::from_settings("Acme ID", None, a, d, None);
        assert!(b(Some("#0b5cad"), Some("#4c9aff")).is_ok(), "our own defaults pass");
        let e = b(Some("#ffcc00"), None).unwrap_err();
        assert!(e.contains("accent_color") && e.contains(":1") && e.contains("darker"), "{e}");
        let e = b(None, Some("#1a1a6e")).unwrap_err();
        assert!(e.contains("accent_color_dark") && e.contains("lighter"), "{e}");
        assert!(b(Some("blue"), None).unwrap_err().contains("not a colour"));
        assert_eq!(b(None, None).unwrap().footer, "Protected by Acme ID");
        assert!(Branding::from_settings("", None, None, None, None).is_err());
        assert!((contrast((0, 0, 0), (255, 255, 255)) - 21.0).abs() < 0.01);
    }
}
