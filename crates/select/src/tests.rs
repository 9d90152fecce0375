use proptest::prelude::*;
use serde_json::json;

use super::*;

fn rec(v: serde_json::Value) -> String {
    v.to_string()
}

fn adv(v: serde_json::Value) -> Vec<AdvancedEventSelector> {
    parse_advanced_event_selectors(&v).unwrap()
}

fn matches(s: &Selectors, r: &str) -> bool {
    CompiledSelectors::compile(s)
        .unwrap()
        .matches(&RecordView::parse(r).unwrap())
}

#[test]
fn test_default_selector_matches_management_only() {
    let s = Selectors::default_for_new_trail();
    assert!(matches(
        &s,
        &rec(json!({"eventCategory": "Management", "readOnly": true}))
    ));
    assert!(matches(&s, &rec(json!({"readOnly": false}))));
    assert!(!matches(
        &s,
        &rec(
            json!({"eventCategory": "Data", "resources": [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::b/k"}]})
        )
    ));
    assert!(!matches(
        &s,
        &rec(json!({"eventType": "AwsCloudTrailInsight"}))
    ));
    assert!(!s.has_custom_event_selectors());
}

#[test]
fn test_basic_read_write_and_exclusions() {
    let s = Selectors::Basic(vec![EventSelector {
        read_write_type: Some("WriteOnly".into()),
        include_management_events: Some(true),
        data_resources: None,
        exclude_management_event_sources: Some(vec!["kms.amazonaws.com".into()]),
    }]);
    assert!(matches(
        &s,
        &rec(json!({"eventSource": "ec2.amazonaws.com", "readOnly": false}))
    ));
    assert!(!matches(
        &s,
        &rec(json!({"eventSource": "ec2.amazonaws.com", "readOnly": true}))
    ));
    assert!(!matches(
        &s,
        &rec(json!({"eventSource": "ec2.amazonaws.com"}))
    ));
    assert!(!matches(
        &s,
        &rec(json!({"eventSource": "kms.amazonaws.com", "readOnly": false}))
    ));
}

#[test]
fn test_basic_data_resources() {
    let sel = |kind: &str, v: &str| {
        Selectors::Basic(vec![EventSelector {
            read_write_type: None,
            include_management_events: Some(false),
            data_resources: Some(vec![DataResource {
                r#type: Some(kind.into()),
                values: Some(vec![v.into()]),
            }]),
            exclude_management_event_sources: None,
        }])
    };
    let s3 = |arn: &str| {
        rec(
            json!({"eventCategory": "Data", "resources": [{"type": "AWS::S3::Object", "ARN": arn}]}),
        )
    };
    let lambda = |arn: &str| {
        rec(
            json!({"eventCategory": "Data", "resources": [{"type": "AWS::Lambda::Function", "ARN": arn}]}),
        )
    };
    assert!(matches(
        &sel("AWS::S3::Object", "arn:aws:s3"),
        &s3("arn:aws:s3:::any/k")
    ));
    assert!(matches(
        &sel("AWS::S3::Object", "arn:aws:s3:::b/"),
        &s3("arn:aws:s3:::b/k")
    ));
    assert!(!matches(
        &sel("AWS::S3::Object", "arn:aws:s3:::b/"),
        &s3("arn:aws:s3:::bb/k")
    ));
    assert!(matches(
        &sel("AWS::S3::Object", "arn:aws:s3:::b/logs/"),
        &s3("arn:aws:s3:::b/logs/x")
    ));
    let f = "arn:aws:lambda:us-east-1:123456789012:function:helloworld";
    assert!(matches(&sel("AWS::Lambda::Function", f), &lambda(f)));
    assert!(!matches(
        &sel("AWS::Lambda::Function", f),
        &lambda(&format!("{f}2"))
    ));
    assert!(matches(
        &sel("AWS::Lambda::Function", "arn:aws:lambda"),
        &lambda(f)
    ));
    assert!(!matches(&sel("AWS::S3::Object", "arn:aws:s3"), &lambda(f)));
    // No management events.
    assert!(!matches(
        &sel("AWS::S3::Object", "arn:aws:s3"),
        &rec(json!({"readOnly": true}))
    ));
}

#[test]
fn test_advanced_operators() {
    let r = rec(
        json!({"eventCategory": "Data", "eventName": "PutObject", "readOnly": false,
        "resources": [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::b/k.txt"}], "userIdentity": {"arn": "arn:aws:iam::1:user/a"}}),
    );
    let cases = [
        (
            json!({"Field": "eventName", "Equals": ["GetObject", "PutObject"]}),
            true,
        ),
        (
            json!({"Field": "eventName", "NotEquals": ["PutObject"]}),
            false,
        ),
        (json!({"Field": "eventName", "StartsWith": ["Put"]}), true),
        (
            json!({"Field": "eventName", "NotStartsWith": ["Put"]}),
            false,
        ),
        (json!({"Field": "eventName", "EndsWith": ["Object"]}), true),
        (
            json!({"Field": "eventName", "NotEndsWith": ["Bucket"]}),
            true,
        ),
        (
            json!({"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::b/"]}),
            true,
        ),
        (
            json!({"Field": "resources.ARN", "EndsWith": [".csv"]}),
            false,
        ),
        (json!({"Field": "readOnly", "Equals": ["false"]}), true),
        (
            json!({"Field": "userIdentity.arn", "Equals": ["arn:aws:iam::1:user/a"]}),
            true,
        ),
        (
            json!({"Field": "errorCode", "Equals": ["VpceAccessDenied"]}),
            false,
        ),
        (
            json!({"Field": "eventName", "StartsWith": ["Put"], "NotEquals": ["PutObject"]}),
            false,
        ),
    ];
    for (fs, expected) in cases {
        let s = Selectors::Advanced(adv(
            json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}, fs.clone()]}]),
        ));
        assert_eq!(matches(&s, &r), expected, "{fs}");
    }
}

#[test]
fn test_validation_messages() {
    let bad = [
        json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "colour", "Equals": ["x"]}]}]),
        json!([{"FieldSelectors": [{"Field": "eventCategory", "StartsWith": ["Man"]}]}]),
        json!([{"FieldSelectors": [{"Field": "eventName", "Equals": ["x"]}]}]),
        json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}]),
        json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "eventName", "Equals": ["x"]}]}]),
        json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "readOnly", "Equals": ["maybe"]}]}]),
        json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "eventSource", "NotEquals": ["s3.amazonaws.com"]}]}]),
        json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.type", "Equals": ["A"]}, {"Field": "resources.type", "Equals": ["B"]}]}]),
        json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Insight"]}]}]),
    ];
    for v in bad {
        let parsed = parse_advanced_event_selectors(&v).unwrap();
        assert!(
            validate_advanced_event_selectors(&parsed, SelectorTarget::Trail).is_err(),
            "{v}"
        );
    }
    let err = parse_advanced_event_selectors(
        &json!([{"FieldSelectors": [{"Field": "eventCategory", "Matches": ["x"]}]}]),
    )
    .unwrap_err();
    assert!(err.message.contains("Invalid operator Matches"), "{err}");
    let err = validate_advanced_event_selectors(
        &adv(json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "colour", "Equals": ["x"]}]}])),
        SelectorTarget::Trail,
    )
    .unwrap_err();
    assert!(err.message.starts_with("Invalid field colour."), "{err}");
    let many: Vec<String> = (0..501).map(|i| format!("e{i}")).collect();
    let v = json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}, {"Field": "eventName", "Equals": many}]}]);
    assert!(
        validate_advanced_event_selectors(&adv(v), SelectorTarget::Trail)
            .unwrap_err()
            .message
            .contains("500")
    );
    let good = json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "readOnly", "Equals": ["true"]}, {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]}]}]);
    validate_advanced_event_selectors(&adv(good), SelectorTarget::Trail).unwrap();

    let basic = |v: serde_json::Value| {
        validate_event_selectors(&serde_json::from_value::<Vec<EventSelector>>(v).unwrap())
    };
    assert!(basic(json!([])).is_err());
    assert!(basic(json!([{}, {}, {}, {}, {}, {}])).is_err());
    assert!(
        basic(json!([{"ReadWriteType": "read-only"}]))
            .unwrap_err()
            .message
            .contains("read-only")
    );
    assert!(
        basic(
            json!([{"DataResources": [{"Type": "AWS::EC2::Instance", "Values": ["arn:aws:ec2"]}]}])
        )
        .is_err()
    );
    assert!(basic(json!([{"ExcludeManagementEventSources": ["s3.amazonaws.com"]}])).is_err());
    assert!(basic(json!([{"ReadWriteType": "All", "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::b/"]}]}])).is_ok());
}

#[test]
fn test_scope() {
    let scope = |multi: bool, global: bool, org: bool| TrailScope {
        home_region: "us-west-2".into(),
        is_multi_region: multi,
        include_global_service_events: global,
        owner_account: "111111111111".into(),
        is_organization_trail: org,
        organization_accounts: vec!["111111111111".into(), "222222222222".into()],
    };
    let r = |acct: &str, region: &str, source: &str| {
        rec(json!({"recipientAccountId": acct, "awsRegion": region, "eventSource": source}))
    };
    let inc = |s: &TrailScope, r: &str| s.includes(&RecordView::parse(r).unwrap());
    assert!(inc(
        &scope(false, true, false),
        &r("111111111111", "us-west-2", "ec2.amazonaws.com")
    ));
    assert!(!inc(
        &scope(false, true, false),
        &r("111111111111", "eu-west-1", "ec2.amazonaws.com")
    ));
    assert!(inc(
        &scope(true, true, false),
        &r("111111111111", "eu-west-1", "ec2.amazonaws.com")
    ));
    // A single-region trail homed outside us-east-1 does not see global
    // service events (us-east-1's) since November 2021; a multi-region one
    // does, unless it excludes them.
    assert!(!inc(
        &scope(false, true, false),
        &r("111111111111", "us-east-1", "iam.amazonaws.com")
    ));
    assert!(inc(
        &scope(true, true, false),
        &r("111111111111", "us-east-1", "iam.amazonaws.com")
    ));
    assert!(!inc(
        &scope(true, false, false),
        &r("111111111111", "us-east-1", "iam.amazonaws.com")
    ));
    let east = |global: bool| TrailScope {
        home_region: "us-east-1".into(),
        ..scope(false, global, false)
    };
    assert!(inc(
        &east(true),
        &r("111111111111", "us-east-1", "iam.amazonaws.com")
    ));
    assert!(!inc(
        &east(false),
        &r("111111111111", "us-east-1", "iam.amazonaws.com")
    ));
    assert!(inc(
        &east(false),
        &r("111111111111", "us-east-1", "ec2.amazonaws.com")
    ));
    assert!(!inc(
        &scope(false, false, false),
        &r("111111111111", "us-east-1", "iam.amazonaws.com")
    ));
    assert!(!inc(
        &scope(true, true, false),
        &r("222222222222", "us-west-2", "ec2.amazonaws.com")
    ));
    assert!(inc(
        &scope(true, true, true),
        &r("222222222222", "us-west-2", "ec2.amazonaws.com")
    ));
    assert!(!inc(
        &scope(true, true, true),
        &r("333333333333", "us-west-2", "ec2.amazonaws.com")
    ));
}

#[test]
fn test_real_records_and_default_selectors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/real-cloudtrail");
    let s = CompiledSelectors::compile(&Selectors::default_for_new_trail()).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the shared corpus beside the repository") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let r = RecordView::parse(line).unwrap();
            assert_eq!(s.matches(&r), r.event_category() == "Management", "{line}");
            n += 1;
        }
    }
    assert_eq!(n, 3234);
}

fn arb_record() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["Management", "Data", "Insight", "NetworkActivity"]),
        prop::option::of(any::<bool>()),
        prop::sample::select(vec![
            "s3.amazonaws.com",
            "kms.amazonaws.com",
            "ec2.amazonaws.com",
        ]),
        prop::sample::select(vec!["GetObject", "PutObject", "Decrypt", "RunInstances"]),
        prop::sample::select(vec!["AWS::S3::Object", "AWS::Lambda::Function"]),
        "[a-c]{1,3}",
    )
        .prop_map(|(cat, ro, src, name, kind, key)| {
            let mut v = json!({"eventCategory": cat, "eventSource": src, "eventName": name,
                "resources": [{"type": kind, "ARN": format!("arn:aws:s3:::b/{key}")}]});
            if let Some(ro) = ro {
                v["readOnly"] = json!(ro);
            }
            v.to_string()
        })
}

proptest! {
    #[test]
    fn prop_basic_all_management_equals_advanced_management(r in arb_record()) {
        let basic = Selectors::default_for_new_trail();
        let advanced = Selectors::Advanced(adv(json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}])));
        prop_assert_eq!(matches(&basic, &r), matches(&advanced, &r));
    }

    #[test]
    fn prop_not_equals_is_the_complement_of_equals(r in arb_record(), name in prop::sample::select(vec!["GetObject", "Decrypt"])) {
        let eq = Selectors::Advanced(adv(json!([{"FieldSelectors": [{"Field": "eventName", "Equals": [name]}]}])));
        let ne = Selectors::Advanced(adv(json!([{"FieldSelectors": [{"Field": "eventName", "NotEquals": [name]}]}])));
        prop_assert_ne!(matches(&eq, &r), matches(&ne, &r));
    }

    #[test]
    fn prop_or_with_itself_changes_nothing(r in arb_record()) {
        let one = json!({"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::b/a"]}]});
        let single = Selectors::Advanced(adv(json!([one.clone()])));
        let double = Selectors::Advanced(adv(json!([one.clone(), one])));
        prop_assert_eq!(matches(&single, &r), matches(&double, &r));
    }

    #[test]
    fn prop_more_field_selectors_never_match_more(r in arb_record(), extra in prop::sample::select(vec!["PutObject", "Decrypt"])) {
        let base = json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data", "Management"]}]}]);
        let narrowed = json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data", "Management"]}, {"Field": "eventName", "Equals": [extra]}]}]);
        let (b, n) = (Selectors::Advanced(adv(base)), Selectors::Advanced(adv(narrowed)));
        prop_assert!(!matches(&n, &r) || matches(&b, &r));
    }
}
