//! The SNS notification (golden JSON and subject) and history items.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cairn_alarm::*;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

fn alarm(changes: Value) -> AlarmDefinition {
    let mut v = json!({
        "AlarmName": "root-login",
        "MetricName": "RootLogins",
        "Namespace": "CIS",
        "Statistic": "Sum",
        "Dimensions": [{"Name": "TrailName", "Value": "main"}],
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:alerts"]
    });
    for (k, x) in changes.as_object().unwrap() {
        v[k] = x.clone();
    }
    validate_put_metric_alarm(&serde_json::from_value(v).unwrap()).unwrap()
}

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 12, h, m, s).unwrap()
}

fn context() -> AlarmContext<'static> {
    AlarmContext {
        region: "us-east-1",
        account_id: "123456789012",
        configuration_updated: t(13, 30, 0) + chrono::Duration::milliseconds(123),
    }
}

fn to_alarm(def: &AlarmDefinition) -> StateChange {
    let mut points = BTreeMap::new();
    points.insert(t(13, 40, 0), MetricAggregate::of_value(5.0));
    evaluate(
        def,
        &AlarmState::initial(t(13, 30, 0)),
        &points,
        t(13, 41, 7),
    )
    .unwrap()
}

#[test]
fn notification_golden() {
    let def = alarm(json!({}));
    let change = to_alarm(&def);
    let n = AlarmNotification::new(&def, &change, context());
    assert_eq!(
        n.subject(),
        r#"ALARM: "root-login" in US East (N. Virginia)"#
    );
    let golden = r#"{"AlarmName":"root-login","AlarmDescription":null,"AWSAccountId":"123456789012","AlarmConfigurationUpdatedTimestamp":"2026-02-12T13:30:00.123+0000","NewStateValue":"ALARM","NewStateReason":"Threshold Crossed: 1 datapoint [5.0 (12/02/26 13:40:00)] was greater than or equal to the threshold (5.0).","StateChangeTime":"2026-02-12T13:41:07.000+0000","Region":"US East (N. Virginia)","AlarmArn":"arn:aws:cloudwatch:us-east-1:123456789012:alarm:root-login","OldStateValue":"INSUFFICIENT_DATA","OKActions":[],"AlarmActions":["arn:aws:sns:us-east-1:123456789012:alerts"],"InsufficientDataActions":[],"Trigger":{"MetricName":"RootLogins","Namespace":"CIS","StatisticType":"Statistic","Statistic":"SUM","Unit":null,"Dimensions":[{"value":"main","name":"TrailName"}],"Period":300,"EvaluationPeriods":1,"ComparisonOperator":"GreaterThanOrEqualToThreshold","Threshold":5.0,"TreatMissingData":"","EvaluateLowSampleCountPercentile":""}}"#;
    assert_eq!(n.to_json(), golden);
    // A subscriber's parse of it reads back the same notification.
    assert_eq!(
        serde_json::from_str::<AlarmNotification>(golden).unwrap(),
        n
    );
}

#[test]
fn notification_with_the_optional_members() {
    let def = alarm(json!({
        "AlarmDescription": "root used",
        "Statistic": null,
        "ExtendedStatistic": "p90",
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 1,
        "Unit": "Count",
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "evaluate",
        "OKActions": ["arn:aws:sns:eu-west-1:123456789012:ok"]
    }));
    let change = set_alarm_state(
        &AlarmState::initial(t(13, 30, 0)),
        StateValue::Ok,
        "manual",
        None,
        t(14, 0, 0),
    )
    .unwrap()
    .unwrap();
    let ctx = AlarmContext {
        region: "eu-west-1",
        ..context()
    };
    let n = AlarmNotification::new(&def, &change, ctx);
    assert_eq!(n.subject(), r#"OK: "root-login" in EU (Ireland)"#);
    let json = n.to_json();
    assert!(
        json.starts_with(r#"{"AlarmName":"root-login","AlarmDescription":"root used","#),
        "{json}"
    );
    assert!(
        json.contains(r#""Trigger":{"MetricName":"RootLogins","Namespace":"CIS","StatisticType":"ExtendedStatistic","ExtendedStatistic":"p90","Unit":"Count","#),
        "{json}"
    );
    assert!(
        json.ends_with(r#""Period":300,"EvaluationPeriods":2,"DatapointsToAlarm":1,"ComparisonOperator":"GreaterThanOrEqualToThreshold","Threshold":5.0,"TreatMissingData":"notBreaching","EvaluateLowSampleCountPercentile":"evaluate"}}"#),
        "{json}"
    );
    assert!(json.contains(r#""Region":"EU (Ireland)","AlarmArn":"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:root-login","OldStateValue":"INSUFFICIENT_DATA""#));
}

#[test]
fn statistic_names_in_notifications() {
    for (s, upper) in [
        ("SampleCount", "SAMPLE_COUNT"),
        ("Average", "AVERAGE"),
        ("Sum", "SUM"),
        ("Minimum", "MINIMUM"),
        ("Maximum", "MAXIMUM"),
    ] {
        let stat: Statistic = s.parse().unwrap();
        assert_eq!(stat.notification_name(), upper);
    }
}

#[test]
fn regions() {
    assert_eq!(region_name("us-east-1"), Some("US East (N. Virginia)"));
    assert_eq!(region_name("us-west-2"), Some("US West (Oregon)"));
    assert_eq!(
        region_name("ap-southeast-1"),
        Some("Asia Pacific (Singapore)")
    );
    assert_eq!(region_name("eu-west-1"), Some("EU (Ireland)"));
    assert_eq!(region_name("mars-1"), None);
    let mut codes: Vec<&str> = REGION_NAMES.iter().map(|(c, _)| *c).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), REGION_NAMES.len());
    // An unknown region is printed as its code.
    let def = alarm(json!({}));
    let ctx = AlarmContext {
        region: "local-1",
        ..context()
    };
    let n = AlarmNotification::new(&def, &to_alarm(&def), ctx);
    assert_eq!(n.region, "local-1");
}

#[test]
fn state_update_history_golden() {
    let def = alarm(json!({}));
    let change = to_alarm(&def);
    let item = state_update_item(&def.alarm_name, &change);
    assert_eq!(item.alarm_name, "root-login");
    assert_eq!(item.alarm_type, "MetricAlarm");
    assert_eq!(item.history_item_type, HistoryItemType::StateUpdate);
    assert_eq!(item.timestamp, t(13, 41, 7));
    assert_eq!(
        item.history_summary,
        "Alarm updated from INSUFFICIENT_DATA to ALARM"
    );
    assert_eq!(
        item.history_data,
        r#"{"version":"1.0","oldState":{"stateValue":"INSUFFICIENT_DATA","stateReason":"Unchecked: Initial alarm creation"},"newState":{"stateValue":"ALARM","stateReason":"Threshold Crossed: 1 datapoint [5.0 (12/02/26 13:40:00)] was greater than or equal to the threshold (5.0).","stateReasonData":{"version":"1.0","queryDate":"2026-02-12T13:41:07.000+0000","startDate":"2026-02-12T13:40:00.000+0000","statistic":"Sum","period":300,"recentDatapoints":[5.0],"threshold":5.0,"evaluatedDatapoints":[{"timestamp":"2026-02-12T13:40:00.000+0000","sampleCount":1.0,"value":5.0}]}}}"#
    );
    let back: AlarmHistoryItem =
        serde_json::from_str(&serde_json::to_string(&item).unwrap()).unwrap();
    assert_eq!(back, item);
    assert!(
        serde_json::to_string(&item)
            .unwrap()
            .contains(r#""HistoryItemType":"StateUpdate""#)
    );
}

#[test]
fn configuration_history() {
    let old = alarm(json!({}));
    let created = configuration_update_item(None, &old, context());
    assert_eq!(
        created.history_item_type,
        HistoryItemType::ConfigurationUpdate
    );
    assert_eq!(created.history_summary, r#"Alarm "root-login" created"#);
    assert_eq!(created.timestamp, context().configuration_updated);
    let data: Value = serde_json::from_str(&created.history_data).unwrap();
    assert_eq!(data["type"], "Create");
    assert_eq!(data["version"], "1.0");
    assert_eq!(data["createdAlarm"]["alarmName"], "root-login");
    assert_eq!(
        data["createdAlarm"]["alarmArn"],
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:root-login"
    );
    assert_eq!(data["createdAlarm"]["statistic"], "Sum");
    assert_eq!(data["createdAlarm"]["oKActions"], json!([]));
    assert_eq!(
        data["createdAlarm"]["dimensions"],
        json!([{"name": "TrailName", "value": "main"}])
    );
    assert_eq!(
        data["createdAlarm"]["alarmConfigurationUpdatedTimestamp"],
        "2026-02-12T13:30:00.123+0000"
    );

    let new = alarm(json!({"Threshold": 10.0}));
    let later = AlarmContext {
        configuration_updated: t(15, 0, 0),
        ..context()
    };
    let updated = configuration_update_item(Some((&old, context())), &new, later);
    assert_eq!(updated.history_summary, r#"Alarm "root-login" updated"#);
    let data: Value = serde_json::from_str(&updated.history_data).unwrap();
    assert_eq!(data["type"], "Update");
    assert_eq!(data["originalUpdatedAlarm"]["threshold"], 5.0);
    assert_eq!(data["updatedAlarm"]["threshold"], 10.0);
}

#[test]
fn action_history() {
    let def = alarm(json!({}));
    let change = to_alarm(&def);
    let n = AlarmNotification::new(&def, &change, context());
    let message = n.to_json();
    let arn = &def.alarm_actions[0];
    let ok = action_item(
        &def.alarm_name,
        &change,
        arn,
        ActionOutcome::Succeeded {
            published_message: Some(&message),
        },
        t(13, 41, 8),
    );
    assert_eq!(ok.history_item_type, HistoryItemType::Action);
    assert_eq!(
        ok.history_summary,
        "Successfully executed action arn:aws:sns:us-east-1:123456789012:alerts"
    );
    let data: Value = serde_json::from_str(&ok.history_data).unwrap();
    assert_eq!(data["actionState"], "Succeeded");
    assert_eq!(
        data["stateUpdateTimestamp"],
        t(13, 41, 7).timestamp_millis()
    );
    assert_eq!(data["publishedMessage"], message.as_str());

    let failed = action_item(
        &def.alarm_name,
        &change,
        arn,
        ActionOutcome::Failed {
            error: "topic not found",
        },
        t(13, 41, 8),
    );
    assert_eq!(
        failed.history_summary,
        "Failed to execute action arn:aws:sns:us-east-1:123456789012:alerts"
    );
    let data: Value = serde_json::from_str(&failed.history_data).unwrap();
    assert_eq!(data["actionState"], "Failed");
    assert_eq!(data["error"], "topic not found");
}

#[test]
fn actions_for_each_state() {
    let def = alarm(json!({"OKActions": ["arn:aws:sns:us-east-1:123456789012:ok"]}));
    assert_eq!(
        def.actions_for(StateValue::Alarm),
        def.alarm_actions.as_slice()
    );
    assert_eq!(def.actions_for(StateValue::Ok), def.ok_actions.as_slice());
    assert!(def.actions_for(StateValue::InsufficientData).is_empty());
    assert_eq!(
        def.actions_to_run(StateValue::Alarm),
        def.alarm_actions.as_slice()
    );
    let disabled = alarm(json!({"ActionsEnabled": false}));
    assert!(!disabled.actions_enabled);
    assert!(disabled.actions_to_run(StateValue::Alarm).is_empty());
    assert_eq!(disabled.actions_for(StateValue::Alarm).len(), 1);
}
