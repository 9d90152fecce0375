//! The CIS AWS Foundations CloudTrail metric filters (Security Hub
//! CloudWatch.1–CloudWatch.14) against realistic records, checked against a
//! hand-written reference of what each filter means.
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

/// (what, pattern, reference)
fn cis_filters() -> Vec<(&'static str, &'static str, Reference)> {
    vec![
        (
            "root account use",
            r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#,
            |v| {
                s(v, &["userIdentity", "type"]) == Some("Root")
                    && v["userIdentity"].get("invokedBy").is_none()
                    && s(v, &["eventType"]).is_some_and(|t| t != "AwsServiceEvent")
            },
        ),
        (
            "unauthorized API calls",
            r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#,
            |v| {
                s(v, &["errorCode"]).is_some_and(|c| {
                    c.ends_with("UnauthorizedOperation") || c.starts_with("AccessDenied")
                })
            },
        ),
        (
            "console sign-in without MFA",
            r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }"#,
            |v| {
                name_in(v, &["ConsoleLogin"])
                    && s(v, &["additionalEventData", "MFAUsed"]).is_some_and(|m| m != "Yes")
            },
        ),
        (
            "IAM policy changes",
            "{($.eventName=DeleteGroupPolicy)||($.eventName=DeleteRolePolicy)||($.eventName=DeleteUserPolicy)||($.eventName=PutGroupPolicy)||($.eventName=PutRolePolicy)||($.eventName=PutUserPolicy)||($.eventName=CreatePolicy)||($.eventName=DeletePolicy)||($.eventName=CreatePolicyVersion)||($.eventName=DeletePolicyVersion)||($.eventName=AttachRolePolicy)||($.eventName=DetachRolePolicy)||($.eventName=AttachUserPolicy)||($.eventName=DetachUserPolicy)||($.eventName=AttachGroupPolicy)||($.eventName=DetachGroupPolicy)}",
            |v| {
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
            },
        ),
        (
            "CloudTrail configuration changes",
            "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }",
            |v| {
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
            },
        ),
        (
            "console authentication failures",
            r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#,
            |v| {
                name_in(v, &["ConsoleLogin"])
                    && s(v, &["errorMessage"]) == Some("Failed authentication")
            },
        ),
        (
            "disabling or scheduled deletion of customer managed keys",
            "{($.eventSource = kms.amazonaws.com) && (($.eventName=DisableKey)||($.eventName=ScheduleKeyDeletion))}",
            |v| {
                source_is(v, "kms.amazonaws.com")
                    && name_in(v, &["DisableKey", "ScheduleKeyDeletion"])
            },
        ),
        (
            "S3 bucket policy changes",
            "{ ($.eventSource = s3.amazonaws.com) && (($.eventName = PutBucketAcl) || ($.eventName = PutBucketPolicy) || ($.eventName = PutBucketCors) || ($.eventName = PutBucketLifecycle) || ($.eventName = PutBucketReplication) || ($.eventName = DeleteBucketPolicy) || ($.eventName = DeleteBucketCors) || ($.eventName = DeleteBucketLifecycle) || ($.eventName = DeleteBucketReplication)) }",
            |v| {
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
            },
        ),
        (
            "AWS Config changes",
            "{ ($.eventSource = config.amazonaws.com) && (($.eventName = StopConfigurationRecorder) || ($.eventName = DeleteDeliveryChannel) || ($.eventName = PutDeliveryChannel) || ($.eventName = PutConfigurationRecorder)) }",
            |v| {
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
            },
        ),
        (
            "security group changes",
            "{ ($.eventName = AuthorizeSecurityGroupIngress) || ($.eventName = AuthorizeSecurityGroupEgress) || ($.eventName = RevokeSecurityGroupIngress) || ($.eventName = RevokeSecurityGroupEgress) || ($.eventName = CreateSecurityGroup) || ($.eventName = DeleteSecurityGroup) }",
            |v| {
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
            },
        ),
        (
            "NACL changes",
            "{ ($.eventName = CreateNetworkAcl) || ($.eventName = CreateNetworkAclEntry) || ($.eventName = DeleteNetworkAcl) || ($.eventName = DeleteNetworkAclEntry) || ($.eventName = ReplaceNetworkAclEntry) || ($.eventName = ReplaceNetworkAclAssociation) }",
            |v| {
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
            },
        ),
        (
            "network gateway changes",
            "{ ($.eventName = CreateCustomerGateway) || ($.eventName = DeleteCustomerGateway) || ($.eventName = AttachInternetGateway) || ($.eventName = CreateInternetGateway) || ($.eventName = DeleteInternetGateway) || ($.eventName = DetachInternetGateway) }",
            |v| {
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
            },
        ),
        (
            "route table changes",
            "{ ($.eventSource = ec2.amazonaws.com) && (($.eventName = CreateRoute) || ($.eventName = CreateRouteTable) || ($.eventName = ReplaceRoute) || ($.eventName = ReplaceRouteTableAssociation) || ($.eventName = DeleteRouteTable) || ($.eventName = DeleteRoute) || ($.eventName = DisassociateRouteTable)) }",
            |v| {
                source_is(v, "ec2.amazonaws.com")
                    && name_in(
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
            },
        ),
        (
            "VPC changes",
            "{ ($.eventName = CreateVpc) || ($.eventName = DeleteVpc) || ($.eventName = ModifyVpcAttribute) || ($.eventName = AcceptVpcPeeringConnection) || ($.eventName = CreateVpcPeeringConnection) || ($.eventName = DeleteVpcPeeringConnection) || ($.eventName = RejectVpcPeeringConnection) || ($.eventName = AttachClassicLinkVpc) || ($.eventName = DetachClassicLinkVpc) || ($.eventName = DisableVpcClassicLink) || ($.eventName = EnableVpcClassicLink) }",
            |v| {
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
            },
        ),
        (
            "AWS Organizations changes",
            r#"{ ($.eventSource = organizations.amazonaws.com) && (($.eventName = "AcceptHandshake") || ($.eventName = "AttachPolicy") || ($.eventName = "CreateAccount") || ($.eventName = "CreateOrganizationalUnit") || ($.eventName = "CreatePolicy") || ($.eventName = "DeclineHandshake") || ($.eventName = "DeleteOrganization") || ($.eventName = "DeleteOrganizationalUnit") || ($.eventName = "DeletePolicy") || ($.eventName = "DetachPolicy") || ($.eventName = "DisablePolicyType") || ($.eventName = "EnablePolicyType") || ($.eventName = "InviteAccountToOrganization") || ($.eventName = "LeaveOrganization") || ($.eventName = "MoveAccount") || ($.eventName = "RemoveAccountFromOrganization") || ($.eventName = "UpdatePolicy") || ($.eventName = "UpdateOrganizationalUnit")) }"#,
            |v| {
                source_is(v, "organizations.amazonaws.com")
                    && name_in(
                        v,
                        &[
                            "AcceptHandshake",
                            "AttachPolicy",
                            "CreateAccount",
                            "CreateOrganizationalUnit",
                            "CreatePolicy",
                            "DeclineHandshake",
                            "DeleteOrganization",
                            "DeleteOrganizationalUnit",
                            "DeletePolicy",
                            "DetachPolicy",
                            "DisablePolicyType",
                            "EnablePolicyType",
                            "InviteAccountToOrganization",
                            "LeaveOrganization",
                            "MoveAccount",
                            "RemoveAccountFromOrganization",
                            "UpdatePolicy",
                            "UpdateOrganizationalUnit",
                        ],
                    )
            },
        ),
    ]
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Runs every filter on every record, compares with the reference, and
/// returns how many records each filter matched.
fn check_records(text: &str) -> Vec<usize> {
    let filters = cis_filters();
    let compiled: Vec<FilterPattern> = filters
        .iter()
        .map(|(what, p, _)| FilterPattern::parse(p).unwrap_or_else(|e| panic!("{what}: {e}")))
        .collect();
    let mut hits = vec![0; filters.len()];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).unwrap();
        let event = LogEvent::new(line);
        for (i, ((what, _, reference), pattern)) in filters.iter().zip(&compiled).enumerate() {
            let got = pattern.matches(&event);
            assert_eq!(got, reference(&value), "{what} on {line}");
            hits[i] += usize::from(got);
        }
    }
    hits
}

#[test]
fn test_cis_filters_parse_and_print_back() {
    for (what, p, _) in cis_filters() {
        let pattern = FilterPattern::parse(p).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            FilterPattern::parse(&pattern.to_string()).unwrap(),
            pattern,
            "{what}"
        );
    }
}

#[test]
fn test_cis_filters_on_generated_records() {
    let text = std::fs::read_to_string(data_dir().join("cloudtrail-seed3.jsonl")).unwrap();
    let hits = check_records(&text);
    // The generated set holds root use, denied calls, console logins and
    // policy and security-group changes.
    assert!(
        hits[0] > 0 && hits[1] > 0 && hits[3] > 0 && hits[9] > 0,
        "{hits:?}"
    );
}

#[test]
fn test_cis_filters_on_crafted_records() {
    let base = serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "userName": "alice"},
        "eventSource": "kms.amazonaws.com",
        "eventName": "ScheduleKeyDeletion",
        "eventType": "AwsApiCall",
        "requestParameters": null,
    });
    let mut records = vec![base.clone()];
    let mut r = base.clone();
    r["eventSource"] = "signin.amazonaws.com".into();
    r["eventName"] = "ConsoleLogin".into();
    r["errorMessage"] = "Failed authentication".into();
    r["additionalEventData"] = serde_json::json!({"MFAUsed": "No"});
    records.push(r);
    let mut r = base.clone();
    r["eventSource"] = "organizations.amazonaws.com".into();
    r["eventName"] = "LeaveOrganization".into();
    records.push(r);
    let mut r = base.clone();
    r["eventSource"] = "ec2.amazonaws.com".into();
    r["eventName"] = "CreateRoute".into();
    r["errorCode"] = "Client.UnauthorizedOperation".into();
    records.push(r);
    let mut r = base;
    r["eventSource"] = "s3.amazonaws.com".into();
    r["eventName"] = "PutBucketPolicy".into();
    r["userIdentity"] = serde_json::json!({"type": "Root", "invokedBy": "s3.amazonaws.com"});
    records.push(r);
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    let hits = check_records(&text);
    for i in [1, 2, 5, 6, 7, 12, 14] {
        assert!(hits[i] > 0, "filter {i} never matched: {hits:?}");
    }
    assert_eq!(hits[0], 0, "root use invoked by a service is not counted");
}

#[test]
fn test_cis_filters_on_real_records_when_present() {
    // Real CloudTrail records shared beside the repository; absent in a bare clone.
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/real-cloudtrail");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(&path).unwrap();
            check_records(&text);
        }
    }
}

/// Timing, not a pass/fail check: all CIS filters on an event against the
/// JSON parse of that event. Run with
/// `cargo test -p cairn-filter --release --test cis -- --ignored --nocapture`.
#[test]
#[ignore = "timing only"]
fn timing_cis_filters_against_json_parse() {
    use std::time::Instant;
    let text = std::fs::read_to_string(data_dir().join("cloudtrail-seed3.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let patterns: Vec<FilterPattern> = cis_filters()
        .iter()
        .map(|(_, p, _)| FilterPattern::parse(p).unwrap())
        .collect();
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
