//! S3 request routing and key decoding on arbitrary URIs and methods: every
//! request names one operation or none, never panics.
#![no_main]

use axum::http::{Method, Request};
use cairn_server::handlers::s3::operation_of;
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 6] = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let method = Method::from_bytes(METHODS[first as usize % METHODS.len()].as_bytes())
        .expect("a known method");
    let (uri, copy_source) = match rest.iter().position(|b| *b == b'\n') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let Ok(uri) = std::str::from_utf8(uri) else {
        return;
    };
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(source) = copy_source {
        builder = builder.header("x-amz-copy-source", source);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    if let Some(op) = operation_of(&parts) {
        assert!(!op.name().is_empty());
        // s3:..., or s3express:/s3-object-lambda: for the operations AWS
        // authorizes under those services.
        let (service, action) = op.iam_action().split_once(':').expect("service:Action");
        assert!(service.starts_with("s3") && !action.is_empty());
    }
});
