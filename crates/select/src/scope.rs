//! Which accounts and regions a trail sees.

use cairn_model::RecordView;

/// Where CloudTrail records global service events.
pub const GLOBAL_SERVICE_REGION: &str = "us-east-1";

/// Services whose events CloudTrail records as global (in us-east-1).
const GLOBAL_SERVICES: [&str; 7] = [
    "iam.amazonaws.com",
    "sts.amazonaws.com",
    "cloudfront.amazonaws.com",
    "route53.amazonaws.com",
    "signin.amazonaws.com",
    "organizations.amazonaws.com",
    "waf.amazonaws.com",
];

/// Whether a record is a global service event: a global service, recorded in us-east-1.
pub fn is_global_service(record: &RecordView<'_>) -> bool {
    record.aws_region.as_deref() == Some(GLOBAL_SERVICE_REGION)
        && record
            .effective_event_source()
            .is_some_and(|s| GLOBAL_SERVICES.contains(&s))
}

/// A trail's scope.
#[derive(Debug, Clone)]
pub struct TrailScope {
    /// The home region.
    pub home_region: String,
    /// Every region, or the home region only.
    pub is_multi_region: bool,
    /// Whether global service events are included.
    pub include_global_service_events: bool,
    /// The trail's account.
    pub owner_account: String,
    /// Whether the trail covers the organization.
    pub is_organization_trail: bool,
    /// Management account and members.
    pub organization_accounts: Vec<String>,
}

impl TrailScope {
    /// Whether the trail sees the record at all.
    pub fn includes(&self, record: &RecordView<'_>) -> bool {
        let Some(account) = record.recipient_account_id.as_deref() else {
            return false;
        };
        let account_ok = if self.is_organization_trail {
            account == self.owner_account || self.organization_accounts.iter().any(|a| a == account)
        } else {
            account == self.owner_account
        };
        if !account_ok {
            return false;
        }
        let Some(region) = record.aws_region.as_deref() else {
            return false;
        };
        // Global service events are us-east-1's events: since November 2021 a
        // trail sees them only if it sees us-east-1 (a multi-region trail, or
        // one homed there), and only if it includes global service events.
        if is_global_service(record) && !self.include_global_service_events {
            return false;
        }
        self.is_multi_region || region == self.home_region
    }
}
