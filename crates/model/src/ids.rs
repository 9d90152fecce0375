//! Validating newtypes for the identifiers CloudTrail uses.

use std::fmt;

use crate::error::{Error, Result};

/// A 12-digit AWS account ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    /// Validates and wraps an account ID.
    pub fn new(value: &str) -> Result<Self> {
        if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::InvalidAccountId {
                value: value.to_owned(),
            })
        }
    }

    /// The account ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A region name such as `us-east-1`.
///
/// Validation is deliberately lenient (lowercase letters, digits and hyphens):
/// real exported logs carry anonymised region names such as `sagov-westsouth-1r`,
/// and a self-hosted deployment may name its own regions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

impl Region {
    /// Validates and wraps a region name.
    pub fn new(value: &str) -> Result<Self> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::InvalidRegion {
                value: value.to_owned(),
            })
        }
    }

    /// The region name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AWS Organizations ID such as `o-exampleorgid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrganizationId(String);

impl OrganizationId {
    /// Validates and wraps an organization ID (`^o-[a-z0-9]{10,32}$`, as Organizations defines it).
    pub fn new(value: &str) -> Result<Self> {
        let ok = value.strip_prefix("o-").is_some_and(|rest| {
            (10..=32).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::InvalidOrganizationId {
                value: value.to_owned(),
            })
        }
    }

    /// The organization ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrganizationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A trail name that follows CloudTrail's rules.
///
/// ASCII letters, digits, `.`, `_` and `-`; starts and ends with a letter or
/// digit; 3 to 128 characters; no two adjacent `.`, `_` or `-`; not an IPv4
/// address. The error messages are CloudTrail's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrailName(String);

impl TrailName {
    /// Validates and wraps a trail name.
    pub fn new(value: &str) -> Result<Self> {
        let fail = |message: String| {
            Err(Error::InvalidTrailName {
                value: value.to_owned(),
                message,
            })
        };
        let len = value.chars().count();
        if len < 3 {
            return fail(format!(
                "Trail name too short. Minimum allowed length: 3 characters. Specified name length: {len} characters."
            ));
        }
        if len > 128 {
            return fail(format!(
                "Trail name too long. Maximum allowed length: 128 characters. Specified name length: {len} characters."
            ));
        }
        let is_punct = |b: u8| matches!(b, b'.' | b'_' | b'-');
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || is_punct(b))
        {
            return fail(
                "Trail name or ARN can only contain uppercase letters, lowercase letters, numbers, periods (.), hyphens (-), and underscores (_)."
                    .to_owned(),
            );
        }
        let bytes = value.as_bytes();
        if !bytes[0].is_ascii_alphanumeric() {
            return fail("Trail name must starts with a letter or number.".to_owned());
        }
        if !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
            return fail("Trail name must ends with a letter or number.".to_owned());
        }
        if bytes.windows(2).any(|w| is_punct(w[0]) && is_punct(w[1])) {
            return fail(
                "Trail name cannot have adjacent periods (.), hyphens (-), or underscores (_)."
                    .to_owned(),
            );
        }
        if value.parse::<std::net::Ipv4Addr>().is_ok() {
            return fail("Trail name cannot be formatted as an IP address.".to_owned());
        }
        Ok(Self(value.to_owned()))
    }

    /// The trail name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrailName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_trail_name_rules() {
        for ok in ["abc", "my-trail", "My_Trail.2", "a1b", &"x".repeat(128)] {
            assert!(TrailName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "my--trail",
            "my-_trail",
            "my trail",
            "trail/1",
            "10.0.0.1",
            "tráil",
            &"x".repeat(129),
        ] {
            assert!(TrailName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_trail_name_messages_are_cloudtrails() {
        let err = TrailName::new("ab").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Trail name too short. Minimum allowed length: 3 characters. Specified name length: 2 characters."
        );
    }

    #[test]
    fn test_account_region_org() {
        assert!(AccountId::new("123456789012").is_ok());
        assert!(AccountId::new("12345678901").is_err());
        assert!(AccountId::new("12345678901a").is_err());
        assert!(Region::new("us-east-1").is_ok());
        assert!(Region::new("sagov-westsouth-1r").is_ok());
        assert!(Region::new("US-EAST-1").is_err());
        assert!(Region::new("").is_err());
        assert!(OrganizationId::new("o-exampleorgid").is_ok());
        assert!(OrganizationId::new("o-short").is_err());
    }
}
