//! The canonical request: how the signed parts of a request are rewritten
//! into the one string both sides hash.
//!
//! Each function here reproduces what the clients compute (botocore, the AWS
//! SDKs) from the bytes that reach the server, so it works on the raw,
//! still percent-encoded path and query.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};
use sha2::{Digest, Sha256};

use crate::{ALGORITHM, CredentialScope};

/// Everything but the SigV4 unreserved characters `A-Z a-z 0-9 - _ . ~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// [`UNRESERVED`] plus `/`, for whole paths.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Percent-encodes `input` the way SigV4 wants it: every byte except
/// `A-Z a-z 0-9 - _ . ~` becomes `%XX` (upper-case hex).
///
/// Useful to clients that build raw query strings or path segments which
/// must survive canonicalisation unchanged.
pub fn uri_encode(input: &[u8]) -> String {
    percent_encode(input, UNRESERVED).to_string()
}

/// Like [`uri_encode`] but leaves `/` alone, for S3 object keys.
pub fn uri_encode_path(input: &[u8]) -> String {
    percent_encode(input, UNRESERVED_AND_SLASH).to_string()
}

/// Which canonical-URI rule a service uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriEncoding {
    /// S3: the path is signed exactly as sent (encoded once by the client,
    /// never normalised, `//` and `.` segments are part of object keys).
    S3,
    /// Every other service: remove dot segments and empty segments, then
    /// percent-encode the (already encoded) path once more.
    Normalized,
}

impl UriEncoding {
    /// The rule for a signing service name: `s3` and its variants sign the
    /// path as sent; everything else normalises and double-encodes.
    pub fn for_service(service: &str) -> Self {
        // s3-object-lambda and s3-outposts are signed by botocore's S3 signer
        // too; the rest of the world normalises.
        match service {
            "s3" | "s3-object-lambda" | "s3-outposts" | "s3express" => UriEncoding::S3,
            _ => UriEncoding::Normalized,
        }
    }
}

/// The canonical URIs a client could have signed for `raw_path`, most likely
/// first.
///
/// Normalised services have exactly one. For S3 the path as sent comes first;
/// if some segment is not in canonical single-encoded form (a client that
/// sent `!` or `+` raw, or lower-case hex), the spec's "encode each segment
/// once" form follows, since that is what a spec-following client signed.
pub(crate) fn canonical_uris(raw_path: &str, encoding: UriEncoding) -> Vec<String> {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    match encoding {
        UriEncoding::Normalized => vec![uri_encode_path(normalize_path(path).as_bytes())],
        UriEncoding::S3 => {
            let mut out = vec![path.to_owned()];
            let reencoded = path
                .split('/')
                .map(|segment| uri_encode(&percent_decode(segment.as_bytes()).collect::<Vec<u8>>()))
                .collect::<Vec<_>>()
                .join("/");
            if reencoded != path {
                out.push(reencoded);
            }
            out
        }
    }
}

/// Removes `.` and `..` segments and collapses runs of `/`, keeping a leading
/// slash and (if anything is left) a trailing one.
///
/// This is botocore's `remove_dot_segments` (which the AWS SDKs share): RFC
/// 3986 dot-segment removal plus the removal of empty segments AWS services
/// require. It works on the encoded path, so `%2F` and `%2E` are ordinary
/// characters here.
pub(crate) fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Decodes one query component: `+` is a space (form encoding, which is what
/// `urlencode` and the SDKs' query parsers assume) and `%XX` is a byte.
/// Malformed escapes are kept literally, as every client does.
fn decode_query_component(raw: &str) -> Vec<u8> {
    let plus_as_space: Vec<u8> = raw
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus_as_space).collect()
}

/// The decoded `(name, value)` pairs of a raw query, in order. Empty pieces
/// (`a=1&&b=2`) carry nothing and are skipped.
pub(crate) fn query_pairs(raw_query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode_query_component(name), decode_query_component(value))
        })
}

/// The canonical query strings a client could have signed, most likely
/// first.
///
/// The first is the SigV4 definition: decode every name and value, encode
/// them again with the unreserved set, sort by name then value, and write
/// `name=value` (with `=` even for empty values) joined by `&`. When
/// `skip_signature` is set (presigned requests) `X-Amz-Signature` is left
/// out, because it cannot sign itself.
///
/// The second, offered only when it differs, is botocore's reading of a query
/// that was already in the URL it was given: the pairs sorted but *not*
/// re-encoded. botocore never produces such URLs itself, but a script that
/// hands it a raw URL (with `+`, lower-case hex, ...) signs this form.
pub(crate) fn canonical_queries(raw_query: &str, skip_signature: bool) -> Vec<String> {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)
        .filter(|(name, _)| !(skip_signature && name == b"X-Amz-Signature"))
        .map(|(name, value)| (uri_encode(&name), uri_encode(&value)))
        .collect();
    pairs.sort_unstable();
    let spec = join_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));

    let mut literal: Vec<(&str, &str)> = if raw_query.is_empty() {
        Vec::new()
    } else {
        raw_query
            .split('&')
            .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
            .filter(|(name, _)| !(skip_signature && *name == "X-Amz-Signature"))
            .collect()
    };
    literal.sort_unstable();
    let literal = join_pairs(literal.into_iter());

    if literal == spec {
        vec![spec]
    } else {
        vec![spec, literal]
    }
}

fn join_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Python's `str.split()` whitespace for the characters that can occur in a
/// header value; botocore trims with it, and so must we to agree with it on
/// tabs and the odd control character.
fn is_signing_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `Trimall` from the SigV4 spec: strip leading and trailing whitespace and
/// replace every inner run of it with a single space.
pub(crate) fn trim_all(value: &str, out: &mut String) {
    let mut first = true;
    for word in value.split(is_signing_whitespace).filter(|w| !w.is_empty()) {
        if !first {
            out.push(' ');
        }
        out.push_str(word);
        first = false;
    }
}

/// The error of [`canonical_headers`]: a header named in `SignedHeaders` is
/// not in the request.
#[derive(Debug)]
pub(crate) struct AbsentHeader(pub(crate) String);

/// The canonical headers block (`name:value\n` per signed header) and the
/// signed-headers line, for the given signed header names in their given
/// order.
///
/// Repeated headers are joined with `,` in the order received, each value
/// trimmed first (what botocore does with a multi-valued header).
pub(crate) fn canonical_headers(
    headers: &[(&str, &str)],
    signed: &[String],
) -> Result<(String, String), AbsentHeader> {
    let mut block = String::new();
    for name in signed {
        let lower = name.to_ascii_lowercase();
        block.push_str(&lower);
        block.push(':');
        let mut found = false;
        for (_, value) in headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)) {
            if found {
                block.push(',');
            }
            trim_all(value, &mut block);
            found = true;
        }
        if !found {
            return Err(AbsentHeader(lower));
        }
        block.push('\n');
    }
    Ok((block, signed.join(";")))
}

/// Assembles the canonical request from its six parts.
pub(crate) fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers_block: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(
        method.len()
            + uri.len()
            + query.len()
            + headers_block.len()
            + signed_headers.len()
            + payload_hash.len()
            + 5,
    );
    for (i, part) in [
        method,
        uri,
        query,
        headers_block,
        signed_headers,
        payload_hash,
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(part);
    }
    out
}

/// The string to sign: algorithm, request time, credential scope and the
/// hash of the canonical request.
pub fn string_to_sign(amz_date: &str, scope: &CredentialScope, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope.scope_string(),
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Lower-case hex SHA-256 of `data`: the payload hash of a signed body.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_matches_botocore_remove_dot_segments() {
        let cases = [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/./example", "/example"),
            ("/example/..", "/"),
            ("/example/../", "/"),
            ("/example1/example2/../..", "/"),
            ("/a/b/../c/", "/a/c/"),
            ("//example//", "/example/"),
            ("/example1//example2//", "/example1/example2/"),
            ("/a/b/..", "/a"),
            ("/../a", "/a"),
            ("a/b", "a/b"),
            ("/a%2F../b", "/a%2F../b"),
            ("/%2E%2E/b", "/%2E%2E/b"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_path(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn normalized_uri_is_encoded_twice() {
        assert_eq!(
            canonical_uris("/%E1%88%B4/a%20b", UriEncoding::Normalized),
            vec!["/%25E1%2588%25B4/a%2520b".to_owned()]
        );
        assert_eq!(
            canonical_uris("/a%2Fb/./c", UriEncoding::Normalized),
            vec!["/a%252Fb/c".to_owned()]
        );
        assert_eq!(
            canonical_uris("", UriEncoding::Normalized),
            vec!["/".to_owned()]
        );
    }

    #[test]
    fn s3_uri_is_used_as_sent_then_reencoded() {
        assert_eq!(
            canonical_uris("/bucket//a/./b%20c", UriEncoding::S3),
            vec!["/bucket//a/./b%20c".to_owned()]
        );
        assert_eq!(
            canonical_uris("/bucket/a+b!%7e", UriEncoding::S3),
            vec!["/bucket/a+b!%7e".to_owned(), "/bucket/a%2Bb%21~".to_owned()]
        );
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        assert_eq!(
            canonical_queries("Param2=value2&Param1=value1&param0=v0", false),
            vec!["Param1=value1&Param2=value2&param0=v0".to_owned()]
        );
        assert_eq!(
            canonical_queries("b=&a&c=1", false),
            vec!["a=&b=&c=1".to_owned()]
        );
        // `+` is a space; `%2B` is a plus; `~` is unreserved.
        let q = canonical_queries("a+b=c%2Bd&t=%7E&e=f%3Dg", false);
        assert_eq!(q[0], "a%20b=c%2Bd&e=f%3Dg&t=~");
        // The literal (botocore raw URL) reading is offered second.
        assert_eq!(q[1], "a+b=c%2Bd&e=f%3Dg&t=%7E");
        assert_eq!(
            canonical_queries("x=1&X-Amz-Signature=abc&a=2", true),
            vec!["a=2&x=1".to_owned()]
        );
        assert_eq!(canonical_queries("", false), vec![String::new()]);
    }

    #[test]
    fn repeated_keys_sort_by_value_after_encoding() {
        assert_eq!(
            canonical_queries("k=b&k=a%20&k=A&k=", false)[0],
            "k=&k=A&k=a%20&k=b"
        );
    }

    #[test]
    fn trim_all_collapses_whitespace() {
        let mut out = String::new();
        trim_all("  \"a   b \t c\"  ", &mut out);
        assert_eq!(out, "\"a b c\"");
        out.clear();
        trim_all("   ", &mut out);
        assert_eq!(out, "");
    }

    #[test]
    fn canonical_headers_join_repeats_and_report_absent_ones() {
        let headers = [
            ("Host", "example.com"),
            ("My-Header1", " value4 "),
            ("my-header1", "value1"),
        ];
        let signed = vec!["host".to_owned(), "my-header1".to_owned()];
        let (block, line) = canonical_headers(&headers, &signed).unwrap();
        assert_eq!(block, "host:example.com\nmy-header1:value4,value1\n");
        assert_eq!(line, "host;my-header1");
        let missing = vec!["host".to_owned(), "x-amz-date".to_owned()];
        assert_eq!(
            canonical_headers(&headers, &missing).unwrap_err().0,
            "x-amz-date"
        );
    }

    #[test]
    fn uri_encode_uses_the_unreserved_set() {
        assert_eq!(uri_encode(b"aZ09-_.~ /+=&%"), "aZ09-_.~%20%2F%2B%3D%26%25");
        assert_eq!(uri_encode_path("a/\u{1234}".as_bytes()), "a/%E1%88%B4");
    }

    #[test]
    fn uri_encoding_per_service() {
        assert_eq!(UriEncoding::for_service("s3"), UriEncoding::S3);
        assert_eq!(
            UriEncoding::for_service("cloudtrail"),
            UriEncoding::Normalized
        );
        assert_eq!(
            UriEncoding::for_service("cloudtrail-data"),
            UriEncoding::Normalized
        );
    }
}
