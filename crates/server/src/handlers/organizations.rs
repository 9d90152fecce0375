//! The part of AWS Organizations the AWS CLI's `validate-logs` calls for
//! organization trails (JSON 1.1, `X-Amz-Target: AWSOrganizationsV20161128.<Op>`):
//! `DescribeOrganization`, answered from the configured `[organization]`.

use axum::response::Response;
use serde_json::{Value, json};

use crate::error::AwsError;
use crate::handlers::cloudtrail::json_ok;
use crate::state::{AppState, RequestContext};

/// The target prefix botocore sends for Organizations operations.
const TARGET_PREFIX: &str = "AWSOrganizationsV20161128.";

/// Handles one Organizations API call.
pub fn handle(state: &AppState, ctx: &RequestContext, target: Option<&str>) -> Response {
    match dispatch(state, ctx, target) {
        Ok(value) => json_ok(&value, &ctx.request_id),
        Err(e) => e.into_json_response(&ctx.request_id),
    }
}

fn dispatch(
    state: &AppState,
    ctx: &RequestContext,
    target: Option<&str>,
) -> Result<Value, AwsError> {
    let operation = target
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .ok_or_else(|| {
            AwsError::client(
                "UnknownOperationException",
                format!(
                    "Unknown operation {}.",
                    target.unwrap_or("(no X-Amz-Target)")
                ),
            )
        })?;
    match operation {
        "DescribeOrganization" => describe_organization(state, ctx),
        other => Err(AwsError::client(
            "UnknownOperationException",
            format!("Operation {other} is not supported by this server."),
        )),
    }
}

fn describe_organization(state: &AppState, ctx: &RequestContext) -> Result<Value, AwsError> {
    let not_in_use = || {
        AwsError::client(
            "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.",
        )
    };
    let organization = state
        .settings
        .organization
        .as_ref()
        .ok_or_else(not_in_use)?;
    // Only accounts of the organization may see it.
    if !organization.all_accounts().contains(&ctx.account_id) {
        return Err(not_in_use());
    }
    let id = &organization.id;
    let management = &organization.management_account;
    Ok(json!({
        "Organization": {
            "Id": id,
            "Arn": format!("arn:aws:organizations::{management}:organization/{id}"),
            "FeatureSet": "ALL",
            "MasterAccountArn": format!("arn:aws:organizations::{management}:account/{id}/{management}"),
            "MasterAccountId": management,
            "AvailablePolicyTypes": [],
        }
    }))
}
