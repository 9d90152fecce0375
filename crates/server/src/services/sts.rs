//! AWS STS: `GetCallerIdentity` (query protocol), what operators run first to
//! see which identity their credentials are.

use crate::error::xml_escape;
use crate::state::RequestContext;

/// `GetCallerIdentity`'s result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetCallerIdentityResult {
    /// The caller's account.
    pub account: String,
    /// The caller's ARN.
    pub arn: String,
    /// The caller's unique id (the account id for an account's root user).
    pub user_id: String,
}

impl GetCallerIdentityResult {
    /// The inner XML of `<GetCallerIdentityResult>`.
    pub fn to_xml(&self) -> String {
        format!(
            "\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  ",
            xml_escape(&self.arn),
            xml_escape(&self.user_id),
            xml_escape(&self.account)
        )
    }
}

/// Who signed the request.
pub fn get_caller_identity(ctx: &RequestContext) -> GetCallerIdentityResult {
    // Every principal today is an account's root user, whose user id is the account id.
    GetCallerIdentityResult {
        account: ctx.account_id.clone(),
        arn: ctx.principal_arn.clone(),
        user_id: ctx.account_id.clone(),
    }
}
