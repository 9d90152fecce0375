//! The part of AWS Organizations the AWS CLI's `validate-logs` calls for
//! organization trails: `DescribeOrganization`, answered from the configured
//! `[organization]`.

use serde::{Deserialize, Serialize};

use crate::error::AwsError;
use crate::state::{AppState, RequestContext};

/// `DescribeOrganization` takes no input.
#[derive(Debug, Default, Deserialize)]
pub struct DescribeOrganizationRequest {}

/// `DescribeOrganization`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeOrganizationResponse {
    /// The organization.
    pub organization: Organization,
}

/// The `Organization` shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Organization {
    /// `o-...`.
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// `ALL`.
    pub feature_set: &'static str,
    /// The management account's ARN.
    pub master_account_arn: String,
    /// The management account.
    pub master_account_id: String,
    /// Always empty (policies are not modelled).
    pub available_policy_types: Vec<String>,
}

/// The caller's organization.
pub async fn describe_organization(
    state: &AppState,
    ctx: &RequestContext,
    _input: DescribeOrganizationRequest,
) -> Result<DescribeOrganizationResponse, AwsError> {
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
    Ok(DescribeOrganizationResponse {
        organization: Organization {
            id: id.clone(),
            arn: format!("arn:aws:organizations::{management}:organization/{id}"),
            feature_set: "ALL",
            master_account_arn: format!(
                "arn:aws:organizations::{management}:account/{id}/{management}"
            ),
            master_account_id: management.clone(),
            available_policy_types: Vec::new(),
        },
    })
}
