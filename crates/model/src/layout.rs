//! The one rule for where CloudTrail puts an account's files in a bucket.
//!
//! Every key CloudTrail writes for one account, log files and digest files
//! alike, starts with `[<prefix>/]AWSLogs/[<org-id>/]<account>/`: the trail's
//! `S3KeyPrefix` (if any, joined with exactly one `/`), then `AWSLogs/`, then
//! the organization ID for an organization trail, then the account. The
//! store's log-file keys, the digest keys and the validate-logs walk all
//! build it here.

/// `[<prefix>/]AWSLogs/[<org-id>/]<account>/`. An empty prefix is no prefix.
pub fn account_root(
    s3_key_prefix: Option<&str>,
    organization_id: Option<&str>,
    account: &str,
) -> String {
    let mut key = String::with_capacity(
        s3_key_prefix.map_or(0, str::len) + organization_id.map_or(0, str::len) + 48,
    );
    if let Some(prefix) = s3_key_prefix.filter(|p| !p.is_empty()) {
        key.push_str(prefix);
        key.push('/');
    }
    key.push_str("AWSLogs/");
    if let Some(org) = organization_id {
        key.push_str(org);
        key.push('/');
    }
    key.push_str(account);
    key.push('/');
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_account_root() {
        assert_eq!(
            account_root(None, None, "111122223333"),
            "AWSLogs/111122223333/"
        );
        assert_eq!(account_root(Some(""), None, "1"), "AWSLogs/1/");
        assert_eq!(
            account_root(Some("a/b"), Some("o-abc"), "1"),
            "a/b/AWSLogs/o-abc/1/"
        );
    }
}
