//! Trail ARNs: `arn:<partition>:cloudtrail:<region>:<account>:trail/<name>`.

use std::fmt;

use crate::error::{Error, Result};
use crate::ids::{AccountId, Region, TrailName};

/// The ARN of a trail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrailArn {
    /// The partition, `aws` for Cairn.
    pub partition: String,
    /// The trail's home region.
    pub region: Region,
    /// The account that owns the trail.
    pub account: AccountId,
    /// The trail's name.
    pub name: TrailName,
}

impl TrailArn {
    /// Builds the ARN of a trail in the `aws` partition.
    pub fn new(region: Region, account: AccountId, name: TrailName) -> Self {
        Self {
            partition: "aws".to_owned(),
            region,
            account,
            name,
        }
    }

    /// Parses a trail ARN; anything else is [`Error::InvalidTrailArn`].
    pub fn parse(value: &str) -> Result<Self> {
        let invalid = || Error::InvalidTrailArn {
            value: value.to_owned(),
        };
        let mut parts = value.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("cloudtrail"),
            Some(region),
            Some(account),
            Some(rest),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(invalid());
        };
        let name = rest.strip_prefix("trail/").ok_or_else(invalid)?;
        if partition.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            partition: partition.to_owned(),
            region: Region::new(region).map_err(|_| invalid())?,
            account: AccountId::new(account).map_err(|_| invalid())?,
            name: TrailName::new(name)?,
        })
    }

    /// Whether a string looks like an ARN (and so must be parsed as one rather than as a name).
    pub fn looks_like_arn(value: &str) -> bool {
        value.starts_with("arn:")
    }
}

impl fmt::Display for TrailArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:cloudtrail:{}:{}:trail/{}",
            self.partition, self.region, self.account, self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_trail_arn_round_trip() {
        let s = "arn:aws:cloudtrail:us-east-1:123456789012:trail/my-trail";
        let arn = TrailArn::parse(s).unwrap();
        assert_eq!(arn.name.as_str(), "my-trail");
        assert_eq!(arn.to_string(), s);
        assert!(TrailArn::parse("arn:aws:s3:::bucket").is_err());
        assert!(TrailArn::parse("arn:aws:cloudtrail:us-east-1:123:trail/x").is_err());
    }
}
