//! The CIS AWS Foundations CloudTrail metric filters (Security Hub
//! CloudWatch.1–CloudWatch.14), read from the shipped set
//! `monitoring/cis-aws-foundations.json`, against realistic records and
//! hand-written examples, checked against a hand-written reference of what
//! each control means.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cairn_filter::{FilterPattern, LogEvent};
use serde_json::Value;

/// Reference predicate for one filter.
type Reference = fn(&Value) -> bool;

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str()
}

fn name_in(v: &Value, names: &[&str]) -> bool {
    s(v, &["eventName"]).is_some_and(|n| names.contains(&n))
}

fn source_is(v: &Value, source: &str) -> bool {
    s(v, &["eventSource"]) == Some(source)
}

/// The hand-written meaning of each control of the shipped set, keyed by
/// control id: the test fails when the file and these disagree.
fn references() -> Vec<(&'static str, Reference)> {
    vec![
        ("CloudWatch.1", |v| {
            s(v, &["userIdentity", "type"]) == Some("Root")
                && v["userIdentity"].get("invokedBy").is_none()
                && s(v, &["eventType"]).is_some_and(|t| t != "AwsServiceEvent")
        }),
        ("CloudWatch.2", |v| {
            s(v, &["errorCode"]).is_some_and(|c| {
                c.ends_with("UnauthorizedOperation") || c.starts_with("AccessDenied")
            })
        }),
        ("CloudWatch.3", |v| {
            name_in(v, &["ConsoleLogin"])
                && s(v, &["additionalEventData", "MFAUsed"]).is_some_and(|m| m != "Yes")
                && s(v, &["userIdentity", "type"]) == Some("IAMUser")
                && s(v, &["responseElements", "ConsoleLogin"]) == Some("Success")
        }),
        ("CloudWatch.4", |v| {
            name_in(
                v,
                &[
                    "DeleteGroupPolicy",
                    "DeleteRolePolicy",
                    "DeleteUserPolicy",
                    "PutGroupPolicy",
                    "PutRolePolicy",
                    "PutUserPolicy",
                    "CreatePolicy",
                    "DeletePolicy",
                    "CreatePolicyVersion",
                    "DeletePolicyVersion",
                    "AttachRolePolicy",
                    "DetachRolePolicy",
                    "AttachUserPolicy",
                    "DetachUserPolicy",
                    "AttachGroupPolicy",
                    "DetachGroupPolicy",
                ],
            )
        }),
        ("CloudWatch.5", |v| {
            name_in(
                v,
                &[
                    "CreateTrail",
                    "UpdateTrail",
                    "DeleteTrail",
                    "StartLogging",
                    "StopLogging",
                ],
            )
        }),
        ("CloudWatch.6", |v| {
            name_in(v, &["ConsoleLogin"])
                && s(v, &["errorMessage"]) == Some("Failed authentication")
        }),
        ("CloudWatch.7", |v| {
            source_is(v, "kms.amazonaws.com") && name_in(v, &["DisableKey", "ScheduleKeyDeletion"])
        }),
        ("CloudWatch.8", |v| {
            source_is(v, "s3.amazonaws.com")
                && name_in(
                    v,
                    &[
                        "PutBucketAcl",
                        "PutBucketPolicy",
                        "PutBucketCors",
                        "PutBucketLifecycle",
                        "PutBucketReplication",
                        "DeleteBucketPolicy",
                        "DeleteBucketCors",
                        "DeleteBucketLifecycle",
                        "DeleteBucketReplication",
                    ],
                )
        }),
        ("CloudWatch.9", |v| {
            source_is(v, "config.amazonaws.com")
                && name_in(
                    v,
                    &[
                        "StopConfigurationRecorder",
                        "DeleteDeliveryChannel",
                        "PutDeliveryChannel",
                        "PutConfigurationRecorder",
                    ],
                )
        }),
        ("CloudWatch.10", |v| {
            name_in(
                v,
                &[
                    "AuthorizeSecurityGroupIngress",
                    "AuthorizeSecurityGroupEgress",
                    "RevokeSecurityGroupIngress",
                    "RevokeSecurityGroupEgress",
                    "CreateSecurityGroup",
                    "DeleteSecurityGroup",
                ],
            )
        }),
        ("CloudWatch.11", |v| {
            name_in(
                v,
                &[
                    "CreateNetworkAcl",
                    "CreateNetworkAclEntry",
                    "DeleteNetworkAcl",
                    "DeleteNetworkAclEntry",
                    "ReplaceNetworkAclEntry",
                    "ReplaceNetworkAclAssociation",
                ],
            )
        }),
        ("CloudWatch.12", |v| {
            name_in(
                v,
                &[
                    "CreateCustomerGateway",
                    "DeleteCustomerGateway",
                    "AttachInternetGateway",
                    "CreateInternetGateway",
                    "DeleteInternetGateway",
                    "DetachInternetGateway",
                ],
            )
        }),
        ("CloudWatch.13", |v| {
            name_in(
                v,
                &[
                    "CreateRoute",
                    "CreateRouteTable",
                    "ReplaceRoute",
                    "ReplaceRouteTableAssociation",
                    "DeleteRouteTable",
                    "DeleteRoute",
                    "DisassociateRouteTable",
                ],
            )
        }),
        ("CloudWatch.14", |v| {
            name_in(
                v,
                &[
                    "CreateVpc",
                    "DeleteVpc",
                    "ModifyVpcAttribute",
                    "AcceptVpcPeeringConnection",
                    "CreateVpcPeeringConnection",
                    "DeleteVpcPeeringConnection",
                    "RejectVpcPeeringConnection",
                    "AttachClassicLinkVpc",
                    "DetachClassicLinkVpc",
                    "DisableVpcClassicLink",
                    "EnableVpcClassicLink",
                ],
            )
        }),
    ]
}

/// One control of `monitoring/cis-aws-foundations.json`.
struct Control {
    id: String,
    pattern_text: String,
    pattern: FilterPattern,
    reference: Reference,
}

fn monitoring_set_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../monitoring/cis-aws-foundations.json")
}

/// Reads the shipped set, parses every pattern and pairs each control with
/// its reference; panics when a control has no reference or a reference
/// no control.
fn cis_controls() -> Vec<Control> {
    let text = std::fs::read_to_string(monitoring_set_path()).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["version"], 1, "document version");
    let refs = references();
    let controls: Vec<Control> = doc["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let id = c["id"].as_str().unwrap().to_owned();
            let pattern_text = c["filterPattern"].as_str().unwrap().to_owned();
            let pattern = FilterPattern::parse(&pattern_text)
                .unwrap_or_else(|e| panic!("{id}: {pattern_text}: {e}"));
            let reference = refs
                .iter()
                .find(|(r, _)| *r == id)
                .unwrap_or_else(|| panic!("{id} has no hand-written reference"))
                .1;
            Control {
                id,
                pattern_text,
                pattern,
                reference,
            }
        })
        .collect();
    for (id, _) in &refs {
        assert!(
            controls.iter().any(|c| c.id == *id),
            "reference {id} has no control in the file"
        );
    }
    assert_eq!(controls.len(), refs.len(), "duplicate control ids");
    controls
}

fn hits_of(controls: &[Control], hits: &[usize], id: &str) -> usize {
    hits[controls.iter().position(|c| c.id == id).unwrap()]
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Runs every control on every record, compares with the reference, and
/// returns how many records each control matched.
fn check_records(controls: &[Control], text: &str) -> Vec<usize> {
    let mut hits = vec![0; controls.len()];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).unwrap();
        let event = LogEvent::new(line);
        for (i, c) in controls.iter().enumerate() {
            let got = c.pattern.matches(&event);
            assert_eq!(got, (c.reference)(&value), "{} on {line}", c.id);
            hits[i] += usize::from(got);
        }
    }
    hits
}

#[test]
fn test_cis_set_document_shape() {
    let text = std::fs::read_to_string(monitoring_set_path()).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    for key in ["name", "logGroupName", "metricNamespace", "topicName"] {
        assert!(doc[key].is_string(), "{key}");
    }
    let controls = doc["controls"].as_array().unwrap();
    let ids: Vec<&str> = controls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    let expected: Vec<String> = (1..=14).map(|n| format!("CloudWatch.{n}")).collect();
    assert_eq!(ids, expected, "the 14 controls, in order");
    for c in controls {
        for key in ["title", "filterName", "filterPattern", "metricName"] {
            assert!(c[key].is_string(), "{}: {key}", c["id"]);
        }
        let alarm = &c["alarm"];
        assert!(alarm["alarmName"].is_string(), "{}", c["id"]);
        assert_eq!(alarm["statistic"], "Sum", "{}", c["id"]);
        assert_eq!(alarm["threshold"], 1, "{}", c["id"]);
        assert_eq!(
            alarm["comparisonOperator"], "GreaterThanOrEqualToThreshold",
            "{}",
            c["id"]
        );
    }
}

#[test]
fn test_cis_patterns_parse_and_print_back() {
    for c in cis_controls() {
        assert_eq!(
            FilterPattern::parse(&c.pattern.to_string()).unwrap(),
            c.pattern,
            "{}: {}",
            c.id,
            c.pattern_text
        );
    }
}

#[test]
fn test_cis_controls_on_generated_records() {
    let controls = cis_controls();
    let text = std::fs::read_to_string(data_dir().join("cloudtrail-seed3.jsonl")).unwrap();
    let hits = check_records(&controls, &text);
    // The generated set holds root use, denied calls, console logins without
    // MFA, and policy and security-group changes.
    for id in [
        "CloudWatch.1",
        "CloudWatch.2",
        "CloudWatch.3",
        "CloudWatch.4",
        "CloudWatch.10",
    ] {
        assert!(hits_of(&controls, &hits, id) > 0, "{id}: {hits:?}");
    }
}

#[test]
fn test_cis_controls_on_a_larger_generated_stream_when_present() {
    // The generator shared beside the repository; absent in a bare clone.
    let tool =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/gen_cloudtrail.py");
    if !tool.exists() {
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(&tool)
        .args(["--count", "20000", "--seed", "42", "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let controls = cis_controls();
    let hits = check_records(&controls, std::str::from_utf8(&out.stdout).unwrap());
    for id in [
        "CloudWatch.1",
        "CloudWatch.2",
        "CloudWatch.3",
        "CloudWatch.6",
    ] {
        assert!(hits_of(&controls, &hits, id) > 0, "{id}: {hits:?}");
    }
}

/// A CloudTrail management event with the fields the controls read.
fn record(source: &str, name: &str) -> Value {
    serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "userName": "alice"},
        "eventTime": "2026-12-02T10:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "eventType": "AwsApiCall",
        "requestParameters": null,
        "responseElements": null,
    })
}

fn console_login(identity: &str, mfa: &str, outcome: &str) -> Value {
    let mut r = record("signin.amazonaws.com", "ConsoleLogin");
    r["userIdentity"]["type"] = identity.into();
    r["eventType"] = "AwsConsoleSignIn".into();
    r["additionalEventData"] = serde_json::json!({"MFAUsed": mfa});
    r["responseElements"] = serde_json::json!({"ConsoleLogin": outcome});
    if outcome == "Failure" {
        r["errorMessage"] = "Failed authentication".into();
    }
    r
}

/// For each control: an event that must trigger it and a near miss that
/// must not.
fn examples() -> Vec<(&'static str, Value, Value)> {
    let mut root = record("s3.amazonaws.com", "ListBuckets");
    root["userIdentity"] =
        serde_json::json!({"type": "Root", "arn": "arn:aws:iam::123456789012:root"});
    let mut root_by_service = root.clone();
    root_by_service["userIdentity"]["invokedBy"] = "support.amazonaws.com".into();

    let mut denied = record("ec2.amazonaws.com", "RunInstances");
    denied["errorCode"] = "Client.UnauthorizedOperation".into();
    let mut throttled = record("ec2.amazonaws.com", "RunInstances");
    throttled["errorCode"] = "Client.RequestLimitExceeded".into();

    let mut iam_lookalike = record("iam.amazonaws.com", "GetPolicyVersion");
    iam_lookalike["requestParameters"] = serde_json::json!({"eventName": "PutUserPolicy"});

    let mut failed_other = record("signin.amazonaws.com", "ConsoleLogin");
    failed_other["errorMessage"] = "No username found in supplied account".into();

    vec![
        ("CloudWatch.1", root, root_by_service),
        ("CloudWatch.2", denied, throttled),
        (
            "CloudWatch.3",
            console_login("IAMUser", "No", "Success"),
            console_login("IAMUser", "No", "Failure"),
        ),
        (
            "CloudWatch.4",
            record("iam.amazonaws.com", "AttachRolePolicy"),
            iam_lookalike,
        ),
        (
            "CloudWatch.5",
            record("cloudtrail.amazonaws.com", "StopLogging"),
            record("cloudtrail.amazonaws.com", "GetTrailStatus"),
        ),
        (
            "CloudWatch.6",
            console_login("IAMUser", "Yes", "Failure"),
            failed_other,
        ),
        (
            "CloudWatch.7",
            record("kms.amazonaws.com", "ScheduleKeyDeletion"),
            record("kms.amazonaws.com", "EnableKey"),
        ),
        (
            "CloudWatch.8",
            record("s3.amazonaws.com", "PutBucketPolicy"),
            record("s3.amazonaws.com", "GetBucketPolicy"),
        ),
        (
            "CloudWatch.9",
            record("config.amazonaws.com", "StopConfigurationRecorder"),
            record("config.amazonaws.com", "StartConfigurationRecorder"),
        ),
        (
            "CloudWatch.10",
            record("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress"),
            record("ec2.amazonaws.com", "DescribeSecurityGroups"),
        ),
        (
            "CloudWatch.11",
            record("ec2.amazonaws.com", "ReplaceNetworkAclEntry"),
            record("ec2.amazonaws.com", "DescribeNetworkAcls"),
        ),
        (
            "CloudWatch.12",
            record("ec2.amazonaws.com", "AttachInternetGateway"),
            record("ec2.amazonaws.com", "CreateNatGateway"),
        ),
        (
            "CloudWatch.13",
            record("ec2.amazonaws.com", "CreateRoute"),
            record("ec2.amazonaws.com", "DescribeRouteTables"),
        ),
        (
            "CloudWatch.14",
            record("ec2.amazonaws.com", "CreateVpcPeeringConnection"),
            record("ec2.amazonaws.com", "CreateVpcEndpoint"),
        ),
    ]
}

#[test]
fn test_cis_controls_on_examples_and_near_misses() {
    let controls = cis_controls();
    let examples = examples();
    for c in &controls {
        let (_, hit, miss) = examples
            .iter()
            .find(|(id, _, _)| *id == c.id)
            .unwrap_or_else(|| panic!("{} has no example", c.id));
        let hit_text = hit.to_string();
        let miss_text = miss.to_string();
        assert!(
            c.pattern.matches_message(&hit_text),
            "{} on {hit_text}",
            c.id
        );
        assert!((c.reference)(hit), "{} reference on {hit_text}", c.id);
        assert!(
            !c.pattern.matches_message(&miss_text),
            "{} on near miss {miss_text}",
            c.id
        );
        assert!(!(c.reference)(miss), "{} reference on {miss_text}", c.id);
    }
    // All examples together, every control against every one of them.
    let text: String = examples
        .iter()
        .flat_map(|(_, hit, miss)| [format!("{hit}\n"), format!("{miss}\n")])
        .collect();
    let hits = check_records(&controls, &text);
    assert!(hits.iter().all(|&h| h > 0), "{hits:?}");
}

#[test]
fn test_cis_controls_on_real_records_when_present() {
    // Real CloudTrail records shared beside the repository; absent in a bare clone.
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/real-cloudtrail");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let controls = cis_controls();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(&path).unwrap();
            check_records(&controls, &text);
        }
    }
}

/// Timing, not a pass/fail check: all CIS filters on an event against the
/// JSON parse of that event. Run with
/// `cargo test -p cairn-filter --release --test cis -- --ignored --nocapture`;
/// `examples/cis_bench.rs` measures the same on a million events.
#[test]
#[ignore = "timing only"]
fn timing_cis_filters_against_json_parse() {
    use std::time::Instant;
    let text = std::fs::read_to_string(data_dir().join("cloudtrail-seed3.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let patterns: Vec<FilterPattern> = cis_controls().into_iter().map(|c| c.pattern).collect();
    let rounds = 200;

    let start = Instant::now();
    let mut parsed = 0usize;
    for _ in 0..rounds {
        for line in &lines {
            let event = LogEvent::new(line);
            parsed += usize::from(event.json().is_some());
        }
    }
    let parse_time = start.elapsed();

    let events: Vec<LogEvent<'_>> = lines.iter().map(|l| LogEvent::new(l)).collect();
    for e in &events {
        assert!(e.json().is_some());
    }
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for event in &events {
            for p in &patterns {
                hits += usize::from(p.matches(event));
            }
        }
    }
    let match_time = start.elapsed();
    let n = (rounds * lines.len()) as f64;
    println!(
        "{} events: JSON parse {:.0} ns/event, {} CIS filters {:.0} ns/event ({} parsed, {} hits)",
        rounds * lines.len(),
        parse_time.as_nanos() as f64 / n,
        patterns.len(),
        match_time.as_nanos() as f64 / n,
        parsed,
        hits
    );
}
