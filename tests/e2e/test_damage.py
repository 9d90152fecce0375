"""Damage is loud and recoverable (issue 11): a damaged WAL stops start-up with
a message naming the file and `cairn doctor`; the doctor reports the damage,
salvages every intact record with --repair, and after that every record but
the damaged one is delivered, exactly once."""

import json
import subprocess
from pathlib import Path

from conftest import ORG_CONFIG, Server, cairn_bin, generate, wait_for

# Delivery waits an hour: records stay in the WAL, unconsumed, until the damage.
HOLD_CONFIG = ORG_CONFIG.replace('interval = "1s"', 'interval = "1h"') + \
    "[ingest]\nwal_segment_bytes = 1048576\n"


def doctor(data_dir, *extra):
    return subprocess.run([cairn_bin(), "doctor", "--data-dir", str(data_dir), *extra],
                          capture_output=True, text=True, timeout=120)


def test_damaged_sealed_segment_stops_start_up_and_doctor_salvages(tmp_path):
    data = tmp_path / "data"
    server = Server(data, HOLD_CONFIG).start()
    try:
        server.client("s3").create_bucket(Bucket="damage")
        ct = server.client("cloudtrail")
        ct.create_trail(Name="held", S3BucketName="damage", IsOrganizationTrail=True, IsMultiRegionTrail=True)
        ct.put_event_selectors(TrailName="held", AdvancedEventSelectors=[
            {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}] + [
            {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                                {"Field": "resources.type", "Equals": [t]}]}
            for t in ("AWS::S3::Object", "AWS::Lambda::Function", "AWS::DynamoDB::Table")])
        ct.start_logging(Name="held")
        lines = generate(3000, seed=21)
        server.ingest_lines(lines)
    finally:
        server.stop()

    segments = sorted((data / "wal").glob("*.wal"))
    assert len(segments) >= 2, segments
    # Flip a byte in the middle of the first (sealed) segment's records.
    first = segments[0]
    raw = bytearray(first.read_bytes())
    at = len(raw) // 2
    raw[at] ^= 0x5A
    first.write_bytes(bytes(raw))

    # Start-up refuses, naming the file and the way out.
    refused = subprocess.run(
        [cairn_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data),
         "--config", str(server.config_path)], env=server.env(), capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert first.name in refused.stderr, refused.stderr
    assert "cairn doctor" in refused.stderr, refused.stderr

    verify = doctor(data)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "damaged LSN" in verify.stdout, verify.stdout
    assert "--repair" in verify.stdout

    repair = doctor(data, "--repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert "repaired LSN" in repair.stdout, repair.stdout
    assert doctor(data).returncode == 0

    # Deliver now: every intact record exactly once, the damaged one lost.
    server.config_path.write_text(ORG_CONFIG + "[ingest]\nwal_segment_bytes = 1048576\n")
    server.start()
    try:
        ids = [json.loads(l)["eventID"] for l in lines]

        def delivered_ids():
            return [json.loads(r)["eventID"] for rs in server.delivered("damage").values() for r in rs]

        wait_for(lambda: len(delivered_ids()) >= len(ids) - 1, timeout=90, message="delivery after repair")
        got = delivered_ids()
        assert len(got) == len(set(got)), "duplicates"
        assert len(got) == len(ids) - 1, (len(got), len(ids))
        assert set(got) <= set(ids)
    finally:
        server.stop()


def test_a_damaged_monitoring_document_stops_start_up_and_the_doctor_names_it(tmp_path):
    import sqlite3
    data = tmp_path / "data"
    server = Server(data, ORG_CONFIG).start()
    try:
        logs = server.client("logs")
        logs.create_log_group(logGroupName="g")
        logs.put_metric_filter(logGroupName="g", filterName="errors", filterPattern="ERROR",
                               metricTransformations=[{"metricName": "E", "metricNamespace": "N",
                                                       "metricValue": "1"}])
    finally:
        server.stop()
    db = sqlite3.connect(data / "monitor.sqlite")
    db.execute("UPDATE metric_filters SET transformations = '[{\"broken'")
    db.commit()
    db.close()

    refused = subprocess.run(
        [cairn_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data),
         "--config", str(server.config_path)], env=server.env(), capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    err = refused.stderr
    assert "monitor.sqlite" in err and "table metric_filters" in err and "cairn doctor" in err, err

    verify = doctor(data)
    assert verify.returncode == 2, verify.stdout + verify.stderr
    assert "cannot repair: monitoring store monitor.sqlite: table metric_filters" in verify.stdout, verify.stdout
