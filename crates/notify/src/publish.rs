//! Publish's checks, and the message each subscription receives.
//!
//! Confirmed in botocore's PublishInput documentation: messages are UTF-8 of
//! at most 262,144 bytes; subjects are UTF-8 with no line breaks or control
//! characters and "less than 100 characters"; with `MessageStructure=json`
//! the message is a JSON object with a string `default` and optional
//! per-protocol string values. The error texts `Invalid parameter: Subject`
//! and `Invalid parameter: Message too long` are SNS's as seen in public
//! error reports; `Invalid parameter: Empty message`, the
//! `Message Structure - …` texts and the message-attribute texts (code
//! `ParameterValueInvalid`, botocore's InvalidParameterValueException) are
//! recalled from SNS and unconfirmed.
//!
//! Chosen by Cairn: a subject of exactly 100 characters passes (reports
//! disagree with the documentation's "less than"); the 262,144 bytes count
//! the message plus every attribute's name, type and value, as SNS's quota
//! page describes the payload; attribute names follow SQS's rules.

use std::collections::BTreeMap;

use crate::Error;
use crate::ids::Protocol;
use crate::message::MessageAttribute;

/// The largest Publish payload, message and attributes together, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 262_144;

/// The longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 100;

/// The most message attributes one Publish may carry.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// Checks Publish's `Message`, `Subject`, `MessageStructure` and
/// `MessageAttributes`.
pub fn validate_publish(
    message: &str,
    subject: Option<&str>,
    message_structure: Option<&str>,
    attributes: &BTreeMap<String, MessageAttribute>,
) -> Result<(), Error> {
    if message.is_empty() {
        return Err(Error::invalid("Empty message"));
    }
    if let Some(subject) = subject {
        let bad = subject.is_empty()
            || subject.chars().count() > MAX_SUBJECT_CHARS
            || subject.chars().any(char::is_control);
        if bad {
            return Err(Error::invalid("Subject"));
        }
    }
    match message_structure {
        None => {}
        Some("json") => {
            structured(message)?;
        }
        Some(_) => return Err(Error::invalid("MessageStructure")),
    }
    if attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(Error::invalid(format!(
            "MessageAttributes: at most {MAX_MESSAGE_ATTRIBUTES} attributes"
        )));
    }
    let mut size = message.len();
    for (name, attribute) in attributes {
        validate_attribute_name(name)?;
        validate_attribute_value(name, attribute)?;
        size += name.len() + attribute.data_type.len() + attribute.value.len();
    }
    if size > MAX_PAYLOAD_BYTES {
        return Err(Error::invalid("Message too long"));
    }
    Ok(())
}

fn structured(message: &str) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let object = match serde_json::from_str::<serde_json::Value>(message) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => {
            return Err(Error::invalid(
                "Message Structure - JSON message body failed to parse",
            ));
        }
    };
    if !object
        .get("default")
        .is_some_and(serde_json::Value::is_string)
    {
        return Err(Error::invalid(
            "Message Structure - No default entry in JSON message body",
        ));
    }
    Ok(object)
}

fn validate_attribute_name(name: &str) -> Result<(), Error> {
    let lower = name.to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameterValue(format!(
            "The message attribute name '{name}' is invalid: names are letters, digits, \
             '_', '-' and '.', at most 256, without a leading, trailing or doubled '.', \
             and may not start with 'AWS.' or 'Amazon.'"
        )))
    }
}

fn validate_attribute_value(name: &str, attribute: &MessageAttribute) -> Result<(), Error> {
    let base = attribute
        .data_type
        .split_once('.')
        .map_or(attribute.data_type.as_str(), |(base, _)| base);
    let fail = |why: &str| {
        Err(Error::InvalidParameterValue(format!(
            "The message attribute '{name}' {why}"
        )))
    };
    if attribute.data_type == "String.Array" {
        return match serde_json::from_str::<serde_json::Value>(&attribute.value) {
            Ok(serde_json::Value::Array(_)) => Ok(()),
            _ => fail("has an invalid message attribute value: String.Array must be a JSON array"),
        };
    }
    match base {
        "String" | "Binary" if attribute.value.is_empty() => {
            fail("must contain non-empty message attribute value")
        }
        "String" | "Binary" => Ok(()),
        "Number" => match attribute.value.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(()),
            _ => fail("has an invalid message attribute value: not a number"),
        },
        _ => fail(
            "has an invalid message attribute type, the set of supported type prefixes is \
             Binary, Number, and String.",
        ),
    }
}

/// The `Message` a subscription of `protocol` receives: the published
/// message itself, or with `MessageStructure=json` the value under the
/// protocol's key (`http`, `https`, `file`) or else under `default`.
/// Call after [`validate_publish`].
pub fn message_for_protocol(
    message: &str,
    message_structure: Option<&str>,
    protocol: Protocol,
) -> Result<String, Error> {
    if message_structure != Some("json") {
        return Ok(message.to_owned());
    }
    let object = structured(message)?;
    let value = object
        .get(protocol.as_str())
        .and_then(serde_json::Value::as_str)
        .or_else(|| object.get("default").and_then(serde_json::Value::as_str))
        .unwrap_or_default();
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(data_type: &str, value: &str) -> MessageAttribute {
        MessageAttribute {
            data_type: data_type.to_owned(),
            value: value.to_owned(),
        }
    }

    fn err(r: Result<(), Error>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.aws_code(), Some("InvalidParameter"));
        e.to_string()
    }

    #[test]
    fn test_message_and_subject() {
        let none = BTreeMap::new();
        validate_publish("hello", None, None, &none).unwrap();
        validate_publish("hello", Some(&"s".repeat(100)), None, &none).unwrap();
        validate_publish("hello", Some("Ünïcödé ✓"), None, &none).unwrap();
        validate_publish(&"x".repeat(MAX_PAYLOAD_BYTES), None, None, &none).unwrap();
        assert_eq!(
            err(validate_publish("", None, None, &none)),
            "Invalid parameter: Empty message"
        );
        assert_eq!(
            err(validate_publish(
                &"x".repeat(MAX_PAYLOAD_BYTES + 1),
                None,
                None,
                &none
            )),
            "Invalid parameter: Message too long"
        );
        for subject in ["", "two\nlines", "tab\there", &"s".repeat(101)] {
            assert_eq!(
                err(validate_publish("m", Some(subject), None, &none)),
                "Invalid parameter: Subject",
                "{subject:?}"
            );
        }
    }

    #[test]
    fn test_attributes_count_toward_the_size() {
        let mut attrs = BTreeMap::new();
        attrs.insert("k".to_owned(), attr("String", "v"));
        let room = MAX_PAYLOAD_BYTES - "k".len() - "String".len() - "v".len();
        validate_publish(&"x".repeat(room), None, None, &attrs).unwrap();
        assert_eq!(
            err(validate_publish(&"x".repeat(room + 1), None, None, &attrs)),
            "Invalid parameter: Message too long"
        );
    }

    #[test]
    fn test_attribute_rules() {
        let one = |name: &str, a: MessageAttribute| {
            let mut attrs = BTreeMap::new();
            attrs.insert(name.to_owned(), a);
            validate_publish("m", None, None, &attrs)
        };
        let value_err = |r: Result<(), Error>| {
            let e = r.unwrap_err();
            assert_eq!(e.aws_code(), Some("ParameterValueInvalid"));
            e.to_string()
        };
        one("severity", attr("String", "high")).unwrap();
        one("n", attr("Number", "-1.5e3")).unwrap();
        one("n", attr("Number.float", "2")).unwrap();
        one("b", attr("Binary", "AAEC")).unwrap();
        one("tags", attr("String.Array", r#"["a", 1, true]"#)).unwrap();
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "AWS.x",
            "amazon.y",
            "sp ace",
            &"a".repeat(257),
        ] {
            assert!(
                value_err(one(bad, attr("String", "v"))).contains("name"),
                "{bad:?}"
            );
        }
        assert!(value_err(one("n", attr("Number", "abc"))).contains("not a number"));
        assert!(value_err(one("s", attr("String", ""))).contains("non-empty"));
        assert!(value_err(one("t", attr("Date", "x"))).contains("type"));
        assert!(value_err(one("a", attr("String.Array", "x"))).contains("JSON array"));
        let mut many = BTreeMap::new();
        for i in 0..11 {
            many.insert(format!("a{i}"), attr("String", "v"));
        }
        assert!(err(validate_publish("m", None, None, &many)).contains("at most 10"));
    }

    #[test]
    fn test_message_structure() {
        let none = BTreeMap::new();
        let m = r#"{"default":"plain","https":"for https","email":"for email"}"#;
        validate_publish(m, None, Some("json"), &none).unwrap();
        assert_eq!(
            message_for_protocol(m, Some("json"), Protocol::Https).unwrap(),
            "for https"
        );
        assert_eq!(
            message_for_protocol(m, Some("json"), Protocol::Http).unwrap(),
            "plain"
        );
        assert_eq!(
            message_for_protocol(m, Some("json"), Protocol::File).unwrap(),
            "plain"
        );
        assert_eq!(message_for_protocol(m, None, Protocol::Http).unwrap(), m);
        assert_eq!(
            err(validate_publish("not json", None, Some("json"), &none)),
            "Invalid parameter: Message Structure - JSON message body failed to parse"
        );
        assert_eq!(
            err(validate_publish(
                r#"{"http":"x"}"#,
                None,
                Some("json"),
                &none
            )),
            "Invalid parameter: Message Structure - No default entry in JSON message body"
        );
        assert_eq!(
            err(validate_publish("m", None, Some("xml"), &none)),
            "Invalid parameter: MessageStructure"
        );
    }
}
