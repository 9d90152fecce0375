"""scripts/cis-monitoring.sh without a server: its --dry-run output holds one
put-metric-filter and one put-metric-alarm per control of
monitoring/cis-aws-foundations.json, with the file's patterns; and a run with a
stand-in `aws` on PATH makes the calls in order (log group when missing, topic
when none is given, then a filter and an alarm per control)."""

import json
import os
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cis-monitoring.sh"
SET = json.loads((REPO / "monitoring" / "cis-aws-foundations.json").read_text())
TOPIC = "arn:aws:sns:us-east-1:123456789012:security-alerts"


def run(*args, env=None):
    proc = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env=env or os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    return proc


def commands(stdout):
    """The aws commands of a dry run, each as its argument list."""
    return [shlex.split(line) for line in stdout.splitlines() if line.startswith("aws ")]


def option(argv, name):
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


def check_controls(cmds, log_group, topic_arn):
    filters = [c for c in cmds if c[1:3] == ["logs", "put-metric-filter"]]
    alarms = [c for c in cmds if c[1:3] == ["cloudwatch", "put-metric-alarm"]]
    controls = SET["controls"]
    assert len(controls) == 14
    assert len(filters) == len(controls) and len(alarms) == len(controls)
    for control, f, a in zip(controls, filters, alarms):
        assert option(f, "--log-group-name") == log_group
        assert option(f, "--filter-name") == control["filterName"]
        assert option(f, "--filter-pattern") == control["filterPattern"], control["id"]
        assert option(f, "--metric-transformations") == (
            f"metricName={control['metricName']},metricNamespace={SET['metricNamespace']},metricValue=1")
        alarm = control["alarm"]
        assert option(a, "--alarm-name") == alarm["alarmName"]
        assert option(a, "--metric-name") == control["metricName"]
        assert option(a, "--namespace") == SET["metricNamespace"]
        assert option(a, "--statistic") == alarm["statistic"]
        assert option(a, "--period") == str(alarm["period"])
        assert option(a, "--evaluation-periods") == str(alarm["evaluationPeriods"])
        assert option(a, "--threshold") == str(alarm["threshold"])
        assert option(a, "--comparison-operator") == alarm["comparisonOperator"]
        assert option(a, "--treat-missing-data") == alarm["treatMissingData"]
        assert option(a, "--alarm-actions") == topic_arn
        assert option(a, "--alarm-description").startswith(control["id"] + ": ")


def test_dry_run_with_a_topic_and_log_group():
    out = run("--dry-run", "--log-group", "org/CloudTrail", "--topic-arn", TOPIC).stdout
    cmds = commands(out)
    assert not [c for c in cmds if c[1:3] == ["sns", "create-topic"]]
    assert ["aws", "logs", "create-log-group", "--log-group-name", "org/CloudTrail"] in cmds
    check_controls(cmds, "org/CloudTrail", TOPIC)
    assert len(cmds) == 1 + 2 * 14


def test_dry_run_defaults_create_the_topic_named_in_the_file():
    cmds = commands(run("--dry-run").stdout)
    create = [c for c in cmds if c[1:3] == ["sns", "create-topic"]]
    assert len(create) == 1 and option(create[0], "--name") == SET["topicName"]
    check_controls(cmds, SET["logGroupName"], f"arn:aws:sns:REGION:ACCOUNT:{SET['topicName']}")


def test_unknown_argument_is_refused():
    proc = subprocess.run([str(SCRIPT), "--frobnicate"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown argument" in proc.stderr


FAKE_AWS = r"""#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
if sys.argv[1:3] == ["logs", "describe-log-groups"]:
    print(os.environ.get("FAKE_AWS_GROUPS", "0"))
elif sys.argv[1:3] == ["sns", "create-topic"]:
    print("arn:aws:sns:eu-west-1:210987654321:" + sys.argv[sys.argv.index("--name") + 1])
"""


def fake_env(tmp_path, groups):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS)
    aws.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_AWS_LOG=str(log),
               FAKE_AWS_GROUPS=groups)
    return env, log


def calls(log):
    return [["aws", *json.loads(line)] for line in log.read_text().splitlines()]


def test_run_creates_missing_log_group_and_topic(tmp_path):
    env, log = fake_env(tmp_path, "0")
    proc = run(env=env)
    assert proc.stdout == ""
    cmds = calls(log)
    assert cmds[0][1:3] == ["logs", "describe-log-groups"]
    assert cmds[1] == ["aws", "logs", "create-log-group", "--log-group-name", "CloudTrail"]
    assert cmds[2][1:3] == ["sns", "create-topic"] and option(cmds[2], "--name") == "cis-alarms"
    check_controls(cmds[3:], "CloudTrail", "arn:aws:sns:eu-west-1:210987654321:cis-alarms")
    assert len(cmds) == 3 + 2 * 14


def test_run_keeps_an_existing_log_group_and_given_topic(tmp_path):
    env, log = fake_env(tmp_path, "1")
    run("--topic-arn", TOPIC, env=env)
    cmds = calls(log)
    assert cmds[0][1:3] == ["logs", "describe-log-groups"]
    assert not [c for c in cmds if c[2] in ("create-log-group", "create-topic")]
    check_controls(cmds[1:], "CloudTrail", TOPIC)
