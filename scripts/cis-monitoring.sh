#!/usr/bin/env bash
# Puts the CIS AWS Foundations CloudTrail monitoring set
# (monitoring/cis-aws-foundations.json) on a log group: one metric filter and
# one alarm per control, the alarms notifying an SNS topic.
#
# Usage: scripts/cis-monitoring.sh [--log-group NAME] [--topic-arn ARN] [--dry-run]
#
#   --log-group NAME  the log group the trail delivers to (default: the set's
#                     logGroupName, "CloudTrail"); created when missing
#   --topic-arn ARN   the topic the alarms notify; without it the set's
#                     topicName is created with `aws sns create-topic`
#                     (idempotent) and its ARN used
#   --dry-run         print the aws commands instead of running them
#   --set FILE        another set document (default: the one beside this script)
#
# Runs the AWS CLI (`aws`), so AWS_ENDPOINT_URL, AWS_REGION/AWS_PROFILE and the
# usual credentials decide where it goes: Cairn or AWS. Needs python3 to read
# the set (no jq).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
set_file="$here/../monitoring/cis-aws-foundations.json"
log_group=""
topic_arn=""
dry_run=0

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --log-group) log_group="${2:?--log-group needs a name}"; shift 2 ;;
        --topic-arn) topic_arn="${2:?--topic-arn needs an ARN}"; shift 2 ;;
        --set) set_file="${2:?--set needs a file}"; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "cis-monitoring.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ -r "$set_file" ]] || { echo "cis-monitoring.sh: cannot read $set_file" >&2; exit 1; }

# Prints a command on one line, each argument single-quoted when it holds
# anything beyond plain word characters, so the line can be pasted into a shell.
show() {
    local out="" arg q="'"
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then
            out+="$arg "
        else
            out+="'${arg//$q/$q\\$q$q}' "
        fi
    done
    printf '%s\n' "${out% }"
}

# Runs a command, or prints it with --dry-run.
run() {
    if [[ $dry_run -eq 1 ]]; then
        show "$@"
    else
        "$@"
    fi
}

# Reads one top-level string of the set.
set_field() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$set_file" "$1"
}

[[ -n "$log_group" ]] || log_group="$(set_field logGroupName)"
namespace="$(set_field metricNamespace)"
topic_name="$(set_field topicName)"

# The log group, when missing.
if [[ $dry_run -eq 1 ]]; then
    echo "# when the log group does not exist yet:"
    show aws logs create-log-group --log-group-name "$log_group"
else
    exists="$(aws logs describe-log-groups --log-group-name-prefix "$log_group" \
        --query "logGroups[?logGroupName=='$log_group'] | length(@)" --output text)"
    if [[ "$exists" == "0" ]]; then
        aws logs create-log-group --log-group-name "$log_group"
    fi
fi

# The topic, unless one was given.
if [[ -z "$topic_arn" ]]; then
    if [[ $dry_run -eq 1 ]]; then
        show aws sns create-topic --name "$topic_name" --query TopicArn --output text
        topic_arn="arn:aws:sns:REGION:ACCOUNT:$topic_name"
        echo "# the alarms below use the ARN create-topic prints"
    else
        topic_arn="$(aws sns create-topic --name "$topic_name" --query TopicArn --output text)"
    fi
fi

# One line per control, fields separated by ASCII unit separators (no field
# holds one): filterName, filterPattern, metricName, metricValue, alarmName,
# statistic, period, evaluationPeriods, threshold, comparisonOperator,
# treatMissingData, title.
controls="$(python3 - "$set_file" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
if doc.get("version") != 1:
    sys.exit(f"unsupported set version {doc.get('version')!r}")
for c in doc["controls"]:
    a = c["alarm"]
    fields = [c["filterName"], c["filterPattern"], c["metricName"], str(c.get("metricValue", "1")),
              a["alarmName"], a["statistic"], str(a["period"]), str(a["evaluationPeriods"]),
              str(a["threshold"]), a["comparisonOperator"], a.get("treatMissingData", "notBreaching"),
              f'{c["id"]}: {c["title"]}']
    for f in fields:
        if "\x1f" in f or "\n" in f:
            sys.exit(f"{c['id']}: a field holds a separator")
    print("\x1f".join(fields))
PY
)"

count=0
while IFS=$'\x1f' read -r filter_name pattern metric_name metric_value alarm_name statistic \
    period evaluation_periods threshold operator missing description; do
    run aws logs put-metric-filter \
        --log-group-name "$log_group" \
        --filter-name "$filter_name" \
        --filter-pattern "$pattern" \
        --metric-transformations "metricName=$metric_name,metricNamespace=$namespace,metricValue=$metric_value"
    run aws cloudwatch put-metric-alarm \
        --alarm-name "$alarm_name" \
        --alarm-description "$description" \
        --metric-name "$metric_name" \
        --namespace "$namespace" \
        --statistic "$statistic" \
        --period "$period" \
        --evaluation-periods "$evaluation_periods" \
        --threshold "$threshold" \
        --comparison-operator "$operator" \
        --treat-missing-data "$missing" \
        --alarm-actions "$topic_arn"
    count=$((count + 1))
done <<<"$controls"

if [[ $dry_run -eq 0 ]]; then
    echo "cis-monitoring.sh: $count metric filters and alarms on log group $log_group, notifying $topic_arn" >&2
fi
