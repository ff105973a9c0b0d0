//! HTML building blocks of the dashboard: escaping, the page frame (navigation, inline CSS, the
//! optional live-update script) and small formatting helpers.
//!
//! Every string that did not come from this file goes through [`escape`] before it reaches a
//! page: block and transaction data, corpus text, addresses, error messages.

use std::fmt::Write;

/// Escapes `text` for HTML element content and double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Corpus bytes as escaped text: invalid UTF-8 becomes U+FFFD and control characters other than
/// newline and tab become `·`, so a window shows as it reads.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() && c != '\n' && c != '\t' { '·' } else { c })
        .collect();
    escape(&text)
}

/// The sections of the navigation bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    /// `/`.
    Overview,
    /// `/loss`.
    Loss,
    /// `/model`.
    Model,
    /// `/blocks`, `/block/…`, `/tx/…`.
    Blocks,
    /// `/chat`.
    Chat,
    /// Error pages.
    None,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Overview, "/", "Overview"),
    (Nav::Loss, "/loss", "Loss"),
    (Nav::Model, "/model", "Model"),
    (Nav::Blocks, "/blocks", "Blocks"),
    (Nav::Chat, "/chat", "Chat"),
];

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}\
header{background:#1d2430;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}\
header a{color:#c9d3e3;text-decoration:none}header a.on{color:#fff;font-weight:600}\
header .brand{font-weight:700;color:#fff;margin-right:1em}#live{margin-left:auto;font-size:.85em;color:#9fb0c8}\
main{max-width:1100px;margin:1.2em auto;padding:0 1.2em}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;background:#fff;width:100%}td,th{border-bottom:1px solid #e3e6ea;padding:.35em .6em;text-align:left;vertical-align:top}\
th{background:#eef1f5;font-weight:600}code,.mono{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:.8em}\
.card{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:.7em 1em}.card .k{color:#5b6676;font-size:.85em}\
.card .v{font-size:1.25em;font-weight:600;font-family:ui-monospace,monospace;word-break:break-all}\
pre.win{white-space:pre-wrap;background:#fff;border:1px solid #e3e6ea;padding:.5em;margin:.2em 0 .8em}\
.note{color:#5b6676;font-size:.9em}.err{color:#a11}textarea{width:100%;font:inherit}\
#reply{white-space:pre-wrap;background:#fff;border:1px solid #e3e6ea;padding:.6em;min-height:3em}";

/// Subscribes to `/events` and shows the tip height in the header; with `reload`, reloads the
/// page when the tip moves.
const LIVE_SCRIPT: &str = "<script>addEventListener('load',function(){if(!window.EventSource)return;\
var first=null,es=new EventSource('/events');es.addEventListener('tip',function(e){var t=JSON.parse(e.data);\
document.getElementById('live').textContent='live: tip '+t.height;\
if(first===null){first=t.hash}else if(t.hash!==first&&document.body.dataset.reload==='1'){es.close();location.reload()}});});</script>";

/// A whole page: `title` (escaped here), the navigation with `nav` highlighted and `body`
/// (already HTML). With `live` the page follows `/events`; with `reload` as well, it reloads on
/// every new tip.
pub fn page(title: &str, nav: Nav, body: &str, live: bool, reload: bool) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · ResonanceNet</title><style>{CSS}</style></head><body data-reload=\"{}\">\
         <header><span class=\"brand\">ResonanceNet</span>",
        escape(title),
        u8::from(reload)
    );
    for (item, href, label) in NAV {
        let class = if *item == nav { " class=\"on\"" } else { "" };
        let _ = write!(out, "<a href=\"{href}\"{class}>{label}</a>");
    }
    out.push_str("<span id=\"live\"></span></header><main>");
    out.push_str(body);
    out.push_str("</main>");
    if live {
        out.push_str(LIVE_SCRIPT);
    }
    out.push_str("</body></html>");
    out
}

/// A key–value card of the overview grid; `id` names the value element (for tests and
/// scripts), `value` is escaped here.
pub fn card(id: &str, key: &str, value: &str) -> String {
    format!(
        "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\" id=\"{}\">{}</div></div>",
        escape(key),
        escape(id),
        escape(value)
    )
}

/// A link to a block page showing the hash's first 16 hex digits.
pub fn block_link(hash_hex: &str) -> String {
    let short: String = hash_hex.chars().take(16).collect();
    format!("<a class=\"mono\" href=\"/block/{}\">{}…</a>", escape(hash_hex), escape(&short))
}

/// A link to a transaction page (with the block that holds it, if known).
pub fn tx_link(txid_hex: &str, block_hex: Option<&str>) -> String {
    let short: String = txid_hex.chars().take(16).collect();
    let query = block_hex.map(|b| format!("?block={}", escape(b))).unwrap_or_default();
    format!("<a class=\"mono\" href=\"/tx/{}{query}\">{}…</a>", escape(txid_hex), escape(&short))
}

/// A loss in micro-nats per byte with its nats value, e.g. `5411532 (5.411532 nats/byte)`.
pub fn loss(micronats: u64) -> String {
    format!("{micronats} ({:.6} nats/byte)", micronats as f64 / 1e6)
}

/// A byte count with a binary unit, e.g. `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Unix seconds as a UTC date and time, e.g. `2023-11-14 22:13:20 UTC`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The value of `key` in a raw query string (`a=1&b=2`), not percent-decoded (the dashboard's
/// parameters are hex or decimal).
pub fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(escape("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn escape_bytes_handles_invalid_utf8_and_controls() {
        assert_eq!(escape_bytes(b"a<b\xff\x01\nc"), "a&lt;b\u{fffd}·\nc");
    }

    #[test]
    fn page_escapes_the_title_and_marks_the_section() {
        let p = page("<x>", Nav::Loss, "<p>body</p>", false, false);
        assert!(p.contains("<title>&lt;x&gt; · ResonanceNet</title>"));
        assert!(p.contains("<a href=\"/loss\" class=\"on\">Loss</a>"));
        assert!(p.contains("<p>body</p>"));
        assert!(!p.contains("EventSource"), "no live script unless asked");
        assert!(page("t", Nav::None, "", true, true).contains("EventSource('/events')"));
    }

    #[test]
    fn cards_and_links_escape_their_values() {
        assert_eq!(
            card("h", "Height", "<1>"),
            "<div class=\"card\"><div class=\"k\">Height</div><div class=\"v\" id=\"h\">&lt;1&gt;</div></div>"
        );
        assert!(block_link("\"><script>").contains("href=\"/block/&quot;&gt;&lt;script&gt;\""));
        assert!(tx_link("ab", Some("cd")).contains("href=\"/tx/ab?block=cd\""));
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(loss(5_411_532), "5411532 (5.411532 nats/byte)");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(query_param(Some("a=1&block=ff&c"), "block"), Some("ff"));
        assert_eq!(query_param(Some("c"), "c"), Some(""));
        assert_eq!(query_param(Some("a=1"), "b"), None);
        assert_eq!(query_param(None, "a"), None);
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(1_767_225_600), "2026-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
