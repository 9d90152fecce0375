"""Real CloudTrail records that nobody here wrote go through ingest and delivery
byte for byte (../shared/data/real-cloudtrail: a real capture, attack
detonations, AWS's documentation examples)."""

import json

from conftest import REAL, wait_for

DEFAULTED = {"eventID", "recipientAccountId", "awsRegion", "eventCategory", "eventType", "eventVersion"}


def load_real():
    files = sorted(REAL.glob("*.jsonl"))
    assert len(files) == 3, files
    lines = []
    for f in files:
        lines += f.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3234
    return lines


def test_real_records_are_delivered_byte_for_byte(make_server):
    lines = load_real()
    records = [json.loads(l) for l in lines]
    accounts = sorted({r["recipientAccountId"] for r in records if "recipientAccountId" in r})
    management = "123456789012"
    members = [a for a in accounts if a != management]
    config = (f'account_id = "{management}"\nregion = "us-east-1"\n[organization]\nid = "o-exampleorgid"\n'
              f'management_account = "{management}"\nmember_accounts = {json.dumps(members)}\n'
              '[delivery]\ninterval = "1s"\n')
    server = make_server(config).start()
    server.client("s3").create_bucket(Bucket="evidence")
    ct = server.client("cloudtrail")
    ct.create_trail(Name="everything", S3BucketName="evidence", IsOrganizationTrail=True, IsMultiRegionTrail=True)
    ct.start_logging(Name="everything")

    answers = server.ingest_lines(lines, batch=250)
    assert sum(a["accepted"] for a in answers) == len(lines), [a["failed"] for a in answers if a["failed"]]

    # What the trail must hold: every management record, first copy of each eventID.
    expected_with_id, expected_without_id, seen = {}, [], set()
    for line, r in zip(lines, records):
        category = r.get("eventCategory") or ("Insight" if r.get("eventType") == "AwsCloudTrailInsight" else "Management")
        if category != "Management":
            continue
        if "eventID" in r:
            if r["eventID"] in seen:
                continue
            seen.add(r["eventID"])
            expected_with_id[r["eventID"]] = line
        else:
            expected_without_id.append(line)
    total = len(expected_with_id) + len(expected_without_id)
    wait_for(lambda: server.metrics()["cairn_delivered_records_total"] >= total, timeout=90,
             message=f"{total} delivered records")

    delivered = [t for records in server.delivered("evidence").values() for t in records]
    assert len(delivered) == total
    unmatched = list(expected_without_id)
    for text in delivered:
        r = json.loads(text)
        original = expected_with_id.pop(r["eventID"], None)
        if original is None:
            # A record that had no eventID: its bytes, then only defaulted fields.
            original = next(o for o in unmatched if text.startswith(o[:-1]))
            unmatched.remove(original)
        if text != original:
            assert text.startswith(original[:-1]), "a delivered record differs from what was sent"
            added = json.loads("{" + text[len(original) - 1:].lstrip(",").rstrip("}") + "}")
            assert set(added) <= DEFAULTED, added
            assert not set(added) & set(json.loads(original)), "a field was added twice"
    assert expected_with_id == {} and unmatched == []
    # Java-style exponent numbers survive untouched.
    assert any("1.688560107857E9" in t for t in delivered)
