//! Names and identifiers: topic and subscription ARNs, message ids,
//! confirmation tokens, and the checks CreateTopic and Subscribe make.
//!
//! Error messages follow SNS's `Invalid parameter: <what>` form. Confirmed in
//! botocore: the code `InvalidParameter` (HTTP 400) and the topic-name and
//! endpoint constraints. The message texts themselves are AWS's as far as
//! public examples show (`Invalid parameter: Topic Name`); the ones about
//! Cairn's own limits are Cairn's.

use std::path::{Path, PathBuf};

use crate::Error;

/// The longest topic name, `.fifo` suffix included (CreateTopic's documentation).
pub const MAX_TOPIC_NAME_LEN: usize = 256;

/// The suffix that marks a FIFO topic's name.
pub const FIFO_SUFFIX: &str = ".fifo";

/// Random bytes in a confirmation token; hex doubles them. SNS's tokens are
/// a few hundred hex digits, and receivers treat them as opaque.
const TOKEN_BYTES: usize = 128;

/// What Subscribe answers as `SubscriptionArn` for a subscription awaiting
/// confirmation, unless `ReturnSubscriptionArn` is true.
pub const PENDING_CONFIRMATION: &str = "pending confirmation";

/// `arn:aws:sns:<region>:<account>:<name>`.
pub fn topic_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:sns:{region}:{account}:{name}")
}

/// A new subscription's ARN: the topic ARN, a colon, and a fresh UUID v4.
pub fn subscription_arn(topic_arn: &str) -> String {
    format!("{topic_arn}:{}", uuid::Uuid::new_v4())
}

/// A fresh `MessageId`: a UUID v4, as SNS's are.
pub fn message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh subscription confirmation token: 256 lower-case hex digits from the
/// operating system's random source, so unguessable.
pub fn confirmation_token() -> Result<String, Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Key(format!("cannot read random bytes: {e}")))?;
    Ok(hex::encode(bytes))
}

/// A topic ARN taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicArn {
    /// Partition, `aws` for Cairn's own.
    pub partition: String,
    /// Region.
    pub region: String,
    /// Account id.
    pub account: String,
    /// Topic name.
    pub name: String,
}

impl TopicArn {
    /// Parses `arn:<partition>:sns:<region>:<account>:<name>`.
    ///
    /// Fails with `Invalid parameter: TopicArn` (SNS's message) for anything else.
    pub fn parse(arn: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", partition, "sns", region, account, name]
                if !partition.is_empty()
                    && !region.is_empty()
                    && !account.is_empty()
                    && is_topic_name_body(name.strip_suffix(FIFO_SUFFIX).unwrap_or(name))
                    && name.len() <= MAX_TOPIC_NAME_LEN =>
            {
                Ok(Self {
                    partition: (*partition).to_owned(),
                    region: (*region).to_owned(),
                    account: (*account).to_owned(),
                    name: (*name).to_owned(),
                })
            }
            _ => Err(Error::invalid("TopicArn")),
        }
    }
}

impl std::fmt::Display for TopicArn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "arn:{}:sns:{}:{}:{}",
            self.partition, self.region, self.account, self.name
        )
    }
}

fn is_topic_name_body(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a CreateTopic `Name`: 1 to 256 ASCII letters, digits, `-` and `_`;
/// a FIFO topic (`FifoTopic=true`) must end in `.fifo`, counted in the 256,
/// and a standard one must not.
///
/// Cairn delivers no FIFO topics, so a well-formed FIFO request is refused
/// too, with a message that says so rather than a name error.
pub fn validate_topic_name(name: &str, fifo: bool) -> Result<(), Error> {
    if fifo {
        let ok = name.len() <= MAX_TOPIC_NAME_LEN
            && name
                .strip_suffix(FIFO_SUFFIX)
                .is_some_and(is_topic_name_body);
        if !ok {
            return Err(Error::invalid(
                "Fifo Topic names must end with .fifo and must be made up of only uppercase \
                 and lowercase ASCII letters, numbers, underscores, and hyphens, and must be \
                 between 1 and 256 characters long.",
            ));
        }
        return Err(Error::invalid(
            "FifoTopic: Cairn does not support FIFO topics; create a standard topic",
        ));
    }
    if name.len() > MAX_TOPIC_NAME_LEN || !is_topic_name_body(name) {
        return Err(Error::invalid("Topic Name"));
    }
    Ok(())
}

/// The protocols Cairn delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// JSON documents POSTed over plain HTTP.
    Http,
    /// JSON documents POSTed over HTTPS.
    Https,
    /// Cairn's extension: each notification document appended to a local
    /// file as one JSON line. Confirmed at once, there being no one at the
    /// other end to visit a `SubscribeURL`; [`file_endpoint_path`] limits
    /// where such files may be.
    File,
}

impl Protocol {
    /// The `Protocol` parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::File => "file",
        }
    }

    /// The file a `file` subscription appends to: the endpoint itself or the
    /// path of its `file://` URL. `None` for other protocols.
    pub fn file_path(self, endpoint: &str) -> Option<PathBuf> {
        match self {
            Protocol::File => {
                let path = endpoint.strip_prefix("file://").unwrap_or(endpoint);
                Some(PathBuf::from(path))
            }
            _ => None,
        }
    }
}

/// The AWS protocols Cairn does not deliver to; Subscribe refuses them by name.
pub const UNSUPPORTED_AWS_PROTOCOLS: &[&str] = &[
    "email",
    "email-json",
    "sms",
    "sqs",
    "lambda",
    "application",
    "firehose",
];

/// Checks Subscribe's `Protocol` and `Endpoint`.
///
/// `http` endpoints must begin with `http://` and `https` ones with `https://`
/// (botocore's SubscribeInput documentation), with a host after the scheme and
/// no whitespace; `file` endpoints are an absolute path or a `file://` URL of
/// one. AWS protocols Cairn does not deliver to are refused by name.
pub fn validate_subscription_endpoint(protocol: &str, endpoint: &str) -> Result<Protocol, Error> {
    let protocol = match protocol {
        "http" => Protocol::Http,
        "https" => Protocol::Https,
        "file" => Protocol::File,
        other if UNSUPPORTED_AWS_PROTOCOLS.contains(&other) => {
            return Err(Error::invalid(format!(
                "Cairn does not support the {other} protocol; supported protocols are http, https and file"
            )));
        }
        other => {
            return Err(Error::invalid(format!(
                "Amazon SNS does not support this protocol string: {other}"
            )));
        }
    };
    let good = match protocol {
        Protocol::Http => url_with_host(endpoint, "http://"),
        Protocol::Https => url_with_host(endpoint, "https://"),
        Protocol::File => {
            let path = endpoint.strip_prefix("file://").unwrap_or(endpoint);
            Path::new(path).is_absolute()
                && !path.ends_with('/')
                && !path.split('/').any(|c| c == "..")
                && !path.contains('\0')
        }
    };
    if !good {
        return Err(Error::invalid(format!(
            "Endpoint: {endpoint:?} is not a valid {} endpoint",
            protocol.as_str()
        )));
    }
    Ok(protocol)
}

/// The file a `file` endpoint (already checked by
/// [`validate_subscription_endpoint`]) names, if it lies under one of
/// `allowed_roots`, the directories the operator lets Cairn append to.
///
/// Without such a check anyone allowed to call Subscribe could make Cairn
/// append to any file it can write. The check is lexical (the endpoint holds
/// no `..`); a symbolic link inside a root is the operator's to avoid.
pub fn file_endpoint_path(endpoint: &str, allowed_roots: &[&Path]) -> Result<PathBuf, Error> {
    let path = Protocol::File
        .file_path(endpoint)
        .unwrap_or_else(|| PathBuf::from(endpoint));
    // `starts_with` compares components, so a `..` would walk out of the root.
    let climbs = path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir));
    let inside = !climbs
        && allowed_roots
            .iter()
            .any(|root| root.is_absolute() && path.starts_with(root) && path != *root);
    if !inside {
        return Err(Error::invalid(format!(
            "Endpoint: {endpoint:?} is not under a directory Cairn may write notifications to"
        )));
    }
    Ok(path)
}

fn url_with_host(endpoint: &str, scheme: &str) -> bool {
    endpoint.strip_prefix(scheme).is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !endpoint.chars().any(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: Error) -> String {
        assert_eq!(e.aws_code(), Some("InvalidParameter"));
        e.to_string()
    }

    #[test]
    fn test_arns_and_ids() {
        let topic = topic_arn("us-east-1", "123456789012", "MyTopic");
        assert_eq!(topic, "arn:aws:sns:us-east-1:123456789012:MyTopic");
        let sub = subscription_arn(&topic);
        let uuid = sub.strip_prefix(&format!("{topic}:")).unwrap();
        let parsed = uuid::Uuid::parse_str(uuid).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(uuid, parsed.to_string(), "hyphenated lower case");
        assert_ne!(subscription_arn(&topic), sub);
        let id = message_id();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
        assert_ne!(message_id(), id);
    }

    #[test]
    fn test_tokens_are_long_random_hex() {
        let a = confirmation_token().unwrap();
        let b = confirmation_token().unwrap();
        assert_eq!(a.len(), 256);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn test_file_endpoints_stay_under_allowed_roots() {
        let roots = [Path::new("/var/lib/cairn/sns"), Path::new("/srv/hooks")];
        assert_eq!(
            file_endpoint_path("/var/lib/cairn/sns/a.jsonl", &roots).unwrap(),
            PathBuf::from("/var/lib/cairn/sns/a.jsonl")
        );
        assert_eq!(
            file_endpoint_path("file:///srv/hooks/x/y.jsonl", &roots).unwrap(),
            PathBuf::from("/srv/hooks/x/y.jsonl")
        );
        for outside in [
            "/etc/passwd",
            "/var/lib/cairn/snsx/a.jsonl",
            "/var/lib/cairn/sns",
            "/srv",
            "/srv/hooks/../../etc/passwd",
        ] {
            let e = file_endpoint_path(outside, &roots).unwrap_err();
            assert!(
                e.to_string().starts_with("Invalid parameter: Endpoint"),
                "{outside}"
            );
        }
        assert!(file_endpoint_path("/srv/hooks/a", &[]).is_err());
        assert!(file_endpoint_path("/srv/hooks/a", &[Path::new("srv/hooks")]).is_err());
    }

    #[test]
    fn test_topic_arn_parse() {
        let arn = TopicArn::parse("arn:aws:sns:eu-west-1:123456789012:alerts").unwrap();
        assert_eq!(arn.region, "eu-west-1");
        assert_eq!(arn.account, "123456789012");
        assert_eq!(arn.name, "alerts");
        assert_eq!(arn.to_string(), "arn:aws:sns:eu-west-1:123456789012:alerts");
        for bad in [
            "",
            "arn:aws:sqs:eu-west-1:123456789012:alerts",
            "arn:aws:sns:eu-west-1:123456789012:",
            "arn:aws:sns:eu-west-1:123456789012:a:b",
            "arn:aws:sns::123456789012:alerts",
        ] {
            assert_eq!(
                message(TopicArn::parse(bad).unwrap_err()),
                "Invalid parameter: TopicArn",
                "{bad}"
            );
        }
    }

    #[test]
    fn test_topic_names() {
        for good in ["a", "My-Topic_1", &"x".repeat(256)] {
            validate_topic_name(good, false).unwrap();
        }
        for bad in ["", "a.b", "my topic", "t.fifo", "é", &"x".repeat(257)] {
            assert_eq!(
                message(validate_topic_name(bad, false).unwrap_err()),
                "Invalid parameter: Topic Name",
                "{bad:?}"
            );
        }
        let fifo_name = message(validate_topic_name("orders", true).unwrap_err());
        assert!(fifo_name.starts_with("Invalid parameter: Fifo Topic names must end with .fifo"));
        let long = format!("{}.fifo", "x".repeat(252));
        assert!(message(validate_topic_name(&long, true).unwrap_err()).contains("must end"));
        let refused = message(validate_topic_name("orders.fifo", true).unwrap_err());
        assert!(
            refused.contains("Cairn does not support FIFO topics"),
            "{refused}"
        );
    }

    #[test]
    fn test_subscription_endpoints() {
        assert_eq!(
            validate_subscription_endpoint("http", "http://example.com/hook").unwrap(),
            Protocol::Http
        );
        assert_eq!(
            validate_subscription_endpoint("https", "https://127.0.0.1:8443").unwrap(),
            Protocol::Https
        );
        let file = validate_subscription_endpoint("file", "/var/log/sns.jsonl").unwrap();
        assert_eq!(file, Protocol::File);
        assert_eq!(
            file.file_path("file:///var/log/sns.jsonl").unwrap(),
            PathBuf::from("/var/log/sns.jsonl")
        );
        validate_subscription_endpoint("file", "file:///tmp/x.jsonl").unwrap();
        for (protocol, endpoint) in [
            ("http", "https://example.com"),
            ("https", "http://example.com"),
            ("http", "http://"),
            ("http", "http:///path"),
            ("https", "https://exa mple.com"),
            ("file", "relative/path"),
            ("file", "file://relative"),
            ("file", "/tmp/../etc/passwd"),
            ("file", "/tmp/"),
        ] {
            let m = message(validate_subscription_endpoint(protocol, endpoint).unwrap_err());
            assert!(
                m.starts_with("Invalid parameter: Endpoint"),
                "{protocol} {endpoint}: {m}"
            );
        }
        for protocol in UNSUPPORTED_AWS_PROTOCOLS {
            let m = message(validate_subscription_endpoint(protocol, "x").unwrap_err());
            assert!(
                m.contains(&format!("Cairn does not support the {protocol} protocol")),
                "{m}"
            );
        }
        let m = message(validate_subscription_endpoint("gopher", "x").unwrap_err());
        assert_eq!(
            m,
            "Invalid parameter: Amazon SNS does not support this protocol string: gopher"
        );
        assert_eq!(Protocol::Http.file_path("http://x"), None);
    }
}
