//! The SigV4 (and S3 SigV2 query) parsers on arbitrary request parts: they
//! refuse or parse, never panic.
#![no_main]

use cairn_auth::RequestParts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines: method, path, query, then `name: value` headers.
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("");
    let raw_path = lines.next().unwrap_or("/");
    let raw_query = lines.next().unwrap_or("");
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let parts = RequestParts {
        method,
        raw_path,
        raw_query,
        headers: &headers,
    };
    if let Ok(parsed) = cairn_auth::parse(&parts) {
        let _ = parsed.needs_body_hash();
        let _ = cairn_auth::verify(&parts, &parsed, "secret", "", chrono_now());
    }
    if let Some(query) = cairn_auth::parse_sigv2_query(raw_query) {
        let _ = query.map(|q| cairn_auth::verify_sigv2(&parts, &q, "secret", chrono_now()));
    }
});

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    // Near the dates fuzzed inputs are likely to carry.
    chrono::DateTime::from_timestamp(1_735_689_600, 0).unwrap_or_default()
}
