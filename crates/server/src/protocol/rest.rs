//! REST-JSON errors (REST-XML errors share the query protocol's `<ErrorResponse>`,
//! S3's are [`AwsError::into_s3_response`]).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::AwsError;

/// A REST-JSON error: the code in `x-amzn-ErrorType` (what botocore reads
/// first) and in the body's `__type`, the text in `message`.
pub fn encode_rest_json_error(error: &AwsError) -> Response {
    let body = json!({"__type": error.code, "message": error.message}).to_string();
    let mut response = (error.status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(error.code) {
        headers.insert("x-amzn-ErrorType", v);
    }
    response
}
