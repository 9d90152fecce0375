//! Where CloudTrail puts its files in a bucket.
//!
//! ```text
//! <bucket>/[<prefix>/]AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/
//!     <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16 chars>.json.gz
//! ```

use chrono::{DateTime, Utc};
use rand::Rng;

use cairn_model::time::format_log_file_stamp;

/// The alphabet of the 16-character unique part of a log file name. CloudTrail's
/// own samples use letters and digits only.
const UNIQUE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub use cairn_model::layout::account_root;

/// A 16-character unique string for a log file name.
pub fn random_unique_string() -> String {
    let mut rng = rand::rng();
    (0..16)
        .map(|_| UNIQUE_ALPHABET[rng.random_range(0..UNIQUE_ALPHABET.len())] as char)
        .collect()
}

/// The full key of a log file delivered at `delivered_at`.
pub fn log_file_key(
    s3_key_prefix: Option<&str>,
    organization_id: Option<&str>,
    account: &str,
    region: &str,
    delivered_at: DateTime<Utc>,
    unique: &str,
) -> String {
    format!(
        "{}CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{}_{unique}.json.gz",
        account_root(s3_key_prefix, organization_id, account),
        delivered_at.format("%Y/%m/%d"),
        format_log_file_stamp(delivered_at),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn test_log_file_key_matches_cloudtrail() {
        let t = Utc.with_ymd_and_hms(2015, 8, 1, 2, 10, 59).unwrap();
        assert_eq!(
            log_file_key(
                None,
                None,
                "111122223333",
                "us-east-2",
                t,
                "Mu0KsOhtH1ar15ZZ"
            ),
            "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/01/111122223333_CloudTrail_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz"
        );
        assert_eq!(
            log_file_key(
                Some("pfx"),
                Some("o-exampleorgid"),
                "111122223333",
                "eu-west-1",
                t,
                "x"
            ),
            "pfx/AWSLogs/o-exampleorgid/111122223333/CloudTrail/eu-west-1/2015/08/01/111122223333_CloudTrail_eu-west-1_20150801T0210Z_x.json.gz"
        );
    }

    #[test]
    fn test_unique_string() {
        let u = random_unique_string();
        assert_eq!(u.len(), 16);
        assert!(u.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(u, random_unique_string());
    }
}
