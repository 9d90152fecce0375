//! What SNS serves without a signature: the signing certificate that
//! receivers fetch from `SigningCertURL`, and the `SubscribeURL` and
//! `UnsubscribeURL` links put in messages. A link is authorized by what it
//! carries (the confirmation token; the subscription ARN, refused for
//! subscriptions confirmed with `AuthenticateOnUnsubscribe`), as on AWS.

use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::protocol::{Codec, Output, aws_service, parse_form};
use crate::services::sns;
use crate::state::AppState;

/// Whether a request carries any signature (header or presigned query).
fn signed(parts: &Parts) -> bool {
    parts.headers.contains_key(header::AUTHORIZATION)
        || parts
            .uri
            .query()
            .is_some_and(|q| q.contains("X-Amz-Credential") || q.contains("AWSAccessKeyId"))
}

/// The answer to an unsigned SNS link or certificate request; `None` for
/// every other request.
pub async fn answer(state: &AppState, parts: &Parts) -> Option<Response> {
    if parts.method != Method::GET || signed(parts) {
        return None;
    }
    let path = parts.uri.path();
    let (certificate_name, pem) = state.monitoring.certificate();
    if path.strip_prefix('/') == Some(certificate_name.as_str()) {
        return Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-x509-ca-cert")],
                pem.to_owned(),
            )
                .into_response(),
        );
    }
    if path != "/" {
        return None;
    }
    let params = parse_form(parts.uri.query().unwrap_or(""));
    let action = params.get("Action")?.clone();
    let service = aws_service("sns", &parts.headers)?;
    let codec = Codec::for_service(service);
    let request_id = uuid::Uuid::new_v4().to_string();
    let get = |name: &str| params.get(name).cloned().unwrap_or_default();
    let result = match action.as_str() {
        "ConfirmSubscription" => {
            sns::confirm_subscription_as(
                state,
                sns::ConfirmSubscriptionRequest {
                    topic_arn: get("TopicArn"),
                    token: get("Token"),
                    authenticate_on_unsubscribe: None,
                },
                false,
            )
            .await
        }
        "Unsubscribe" => {
            sns::unsubscribe_as(
                state,
                sns::SubscriptionRequest {
                    subscription_arn: get("SubscriptionArn"),
                },
                false,
            )
            .await
        }
        _ => return None,
    };
    Some(match result {
        Ok(value) => codec.encode_output(&action, Output::Json(value), &request_id),
        Err(e) => codec.encode_error(&e, &request_id, None, false),
    })
}
