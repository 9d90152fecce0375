"""Fault injection (issue 11): every case ends in full delivery of every
acknowledged record, exactly once, or in a loud refusal (start-up refused
naming the file and `cairn doctor`, a red /health, a non-zero exit), never in
silent loss.

Cases: a store that fails for a while with a crash in the middle, EMFILE (a
low `ulimit -n` with idle sockets held), ENOSPC on the WAL (a small tmpfs),
truncation and bit flips in sealed and active segments, a deleted cursors
file, a damaged metastore row, kill -9 during recovery. A flipped byte in a
sealed segment is `test_damage.py`'s case.

Which records damage destroys is computed here from the segment bytes (where
each acknowledged eventID sits in the file), not taken from the doctor."""

import collections
import json
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import ORG_CONFIG, Server, cairn_bin, generate, wait_for

SMALL = "[ingest]\nwal_segment_bytes = 1048576\n"
# Delivery waits an hour: records stay in the WAL, unconsumed by the trail.
HOLD_CONFIG = ORG_CONFIG.replace('interval = "1s"', 'interval = "1h"') + SMALL
DELIVER_CONFIG = ORG_CONFIG + SMALL
BUCKET = "faults"
SELECTORS = [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}] + [
    {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                        {"Field": "resources.type", "Equals": [t]}]}
    for t in ("AWS::S3::Object", "AWS::Lambda::Function", "AWS::DynamoDB::Table")]


def ids_of(lines):
    return [json.loads(l)["eventID"] for l in lines]


def make_trail(server, bucket=BUCKET):
    server.client("s3").create_bucket(Bucket=bucket)
    ct = server.client("cloudtrail")
    ct.create_trail(Name="faults", S3BucketName=bucket, IsOrganizationTrail=True, IsMultiRegionTrail=True)
    ct.put_event_selectors(TrailName="faults", AdvancedEventSelectors=SELECTORS)
    ct.start_logging(Name="faults")


def held(tmp_path, count=3000, seed=41):
    """A data dir holding `count` acknowledged records none of which the trail
    has delivered yet, its server stopped. Returns (server, lines)."""
    server = Server(tmp_path / "data", HOLD_CONFIG).start()
    try:
        make_trail(server)
        lines = generate(count, seed=seed)
        server.ingest_lines(lines)
    finally:
        server.stop()
    return server, lines


def refused_start(server):
    return subprocess.run(
        [cairn_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(server.data_dir),
         "--config", str(server.config_path)], env=server.env(), capture_output=True, text=True, timeout=60)


def doctor(server, *extra):
    return subprocess.run([cairn_bin(), "doctor", "--data-dir", str(server.data_dir), *extra],
                          capture_output=True, text=True, timeout=120)


def delivered_ids(server, bucket=BUCKET):
    return [json.loads(r)["eventID"] for rs in server.delivered(bucket).values() for r in rs]


def assert_delivered_exactly(server, expected, timeout=120, bucket=BUCKET, unacknowledged=()):
    """Every id of `expected` delivered, each once, and nothing else but
    records that were sent and refused (`unacknowledged`: a request that
    failed after its records were written may still deliver them, once)."""
    expected = set(expected)
    wait_for(lambda: set(delivered_ids(server, bucket)) >= expected, timeout=timeout,
             message=f"delivery of {len(expected)} records")
    time.sleep(2.5)  # a later delivery would show a duplicate
    got = delivered_ids(server, bucket)
    dupes = [i for i, n in collections.Counter(got).items() if n > 1]
    assert not dupes, f"{len(dupes)} records delivered more than once"
    extra = set(got) - expected - set(unacknowledged)
    assert not extra and set(got) >= expected, (len(extra), len(expected - set(got)))


def segments(server):
    return sorted((server.data_dir / "wal").glob("*.wal"))


def positions(raw, ids):
    """Where each eventID sits in a segment's bytes (absent ones left out)."""
    out = {}
    for i in ids:
        at = raw.find(i.encode())
        if at >= 0:
            out[i] = at
    return out


def refuse_then_repair(server, damaged_file):
    """Start-up refuses naming the file and the doctor; the doctor reports,
    repairs, and then finds the data dir clean."""
    refused = refused_start(server)
    assert refused.returncode != 0
    assert damaged_file.name in refused.stderr, refused.stderr
    assert "cairn doctor" in refused.stderr, refused.stderr
    verify = doctor(server)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "damaged LSN" in verify.stdout, verify.stdout
    repair = doctor(server, "--repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert "repaired LSN" in repair.stdout, repair.stdout
    assert doctor(server).returncode == 0


def deliver_after_repair(server, expected):
    server.config_path.write_text(DELIVER_CONFIG)
    server.start()
    try:
        assert_delivered_exactly(server, expected)
    finally:
        server.stop()


# --- damaged files -------------------------------------------------------------------


def test_truncated_sealed_segment_refuses_start_and_doctor_salvages(tmp_path):
    server, lines = held(tmp_path)
    ids = ids_of(lines)
    files = segments(server)
    assert len(files) >= 2, files
    sealed = files[0]
    raw = sealed.read_bytes()
    where = positions(raw, ids)
    # Cut the segment at a record in its middle: it and everything after it
    # in this segment are gone.
    cut = sorted(where.values())[len(where) // 2]
    with open(sealed, "r+b") as f:
        f.truncate(cut)
    lost = {i for i, at in where.items() if at >= cut}
    assert lost
    refuse_then_repair(server, sealed)
    deliver_after_repair(server, set(ids) - lost)


def test_bit_flip_in_active_segment_refuses_start_and_doctor_salvages(tmp_path):
    server, lines = held(tmp_path)
    ids = ids_of(lines)
    active = segments(server)[-1]
    raw = bytearray(active.read_bytes())
    where = positions(bytes(raw), ids)
    assert len(where) > 10, len(where)
    # Flip a byte inside one record's JSON, with whole records after it.
    victim = sorted(where, key=where.get)[len(where) // 2]
    raw[where[victim] + 5] ^= 0x20
    active.write_bytes(bytes(raw))
    refuse_then_repair(server, active)
    deliver_after_repair(server, set(ids) - {victim})


def test_truncated_active_segment_refuses_start_and_doctor_salvages(tmp_path):
    server, lines = held(tmp_path)
    ids = ids_of(lines)
    active = segments(server)[-1]
    raw = active.read_bytes()
    where = positions(raw, ids)
    assert len(where) > 10, len(where)
    # Acknowledged records cut off the end of the newest segment: not a torn
    # tail (the dedup persister had read past the cut), so it is loud.
    cut = sorted(where.values())[len(where) // 2]
    with open(active, "r+b") as f:
        f.truncate(cut)
    lost = {i for i, at in where.items() if at >= cut}
    refuse_then_repair(server, active)
    deliver_after_repair(server, set(ids) - lost)


def test_deleted_cursors_file_refuses_start_loudly(tmp_path):
    server, _ = held(tmp_path, count=500)
    cursors = server.data_dir / "wal" / "cursors"
    assert cursors.exists(), sorted(p.name for p in (server.data_dir / "wal").iterdir())
    cursors.unlink()
    refused = refused_start(server)
    assert refused.returncode != 0
    assert str(cursors) in refused.stderr, refused.stderr
    assert "cairn doctor" in refused.stderr, refused.stderr
    # The doctor names it and cannot guess where each consumer stood.
    verify = doctor(server, "--repair")
    assert verify.returncode == 2, verify.stdout + verify.stderr
    assert "cursors" in verify.stdout and "cannot repair" in verify.stdout, verify.stdout
    # Still refused: nothing starts over a log whose positions are lost.
    assert refused_start(server).returncode != 0


@pytest.mark.parametrize("damage", ["truncated config", "wrong shape status"])
def test_damaged_metastore_row_refuses_start_then_the_doctor_rebuilds_it(tmp_path, damage):
    server, lines = held(tmp_path, count=200)
    server.start()
    try:
        expected_trail = server.client("cloudtrail").get_trail(Name="faults")["Trail"]
        expected_selectors = server.client("cloudtrail").get_event_selectors(TrailName="faults")
    finally:
        server.stop()
    db = sqlite3.connect(server.data_dir / "meta.sqlite")
    (arn,) = db.execute("SELECT arn FROM trails").fetchone()
    if damage == "truncated config":
        db.execute("UPDATE trails SET config = substr(config, 1, 50)")
        column = "config"
    else:
        db.execute("UPDATE trails SET status = '[1,2]'")
        column = "status"
    db.commit()
    db.close()
    refused = refused_start(server)
    assert refused.returncode != 0
    err = refused.stderr
    assert "meta.sqlite" in err and "table trails" in err and arn in err and f"column {column}" in err, err
    assert "cairn doctor" in err, err
    verify = doctor(server)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert f"table trails, row arn = '{arn}', column {column}" in verify.stdout, verify.stdout
    assert "--repair rebuilds it" in verify.stdout, verify.stdout
    assert refused_start(server).returncode != 0
    # The trail's sink checkpoint holds its configuration at its cursor, and the
    # WAL every change past it (PutEventSelectors, StartLogging came after).
    repaired = doctor(server, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"rebuilt trail {arn}" in repaired.stdout and "status times" in repaired.stdout, repaired.stdout
    assert doctor(server).returncode == 0
    server.config_path.write_text(DELIVER_CONFIG)
    server.start()
    ct = server.client("cloudtrail")
    assert ct.get_trail(Name="faults")["Trail"] == expected_trail
    selectors = ct.get_event_selectors(TrailName="faults")
    selectors.pop("ResponseMetadata")
    expected_selectors.pop("ResponseMetadata")
    assert selectors == expected_selectors
    assert ct.get_trail_status(Name=arn)["IsLogging"] is True
    assert_delivered_exactly(server, ids_of(lines))
    server.stop()


def test_a_damaged_trail_row_without_a_checkpoint_is_removed_and_said(tmp_path):
    server, _ = held(tmp_path, count=50)
    # No sink has ever checkpointed a trail that only the metastore knows.
    db = sqlite3.connect(server.data_dir / "meta.sqlite")
    config, status = db.execute("SELECT config, status FROM trails").fetchone()
    ghost = "arn:aws:cloudtrail:us-east-1:123456789012:trail/ghost"
    db.execute("INSERT INTO trails (arn, name, config, status) VALUES (?, 'ghost', ?, ?)",
               (ghost, config[:40], status))
    db.commit()
    db.close()
    repaired = doctor(server, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"lost trail {ghost}" in repaired.stdout and "create the trail again" in repaired.stdout
    server.start()
    names = [t["Name"] for t in server.client("cloudtrail").describe_trails()["trailList"]]
    assert names == ["faults"]
    server.stop()


# --- kill -9 during recovery -----------------------------------------------------------


def test_kill_9_during_recovery_then_every_record_once(tmp_path):
    server, lines = held(tmp_path, count=6000, seed=43)
    server.config_path.write_text(DELIVER_CONFIG)
    # Start and kill at points through start-up, replay and the first
    # deliveries (each start resumes what the last one began).
    for delay in (0.05, 0.3, 0.8, 1.5, 2.5):
        proc = subprocess.Popen(
            [cairn_bin(), "serve", "--listen", f"127.0.0.1:{server.port}", "--data-dir", str(server.data_dir),
             "--config", str(server.config_path)],
            stdout=subprocess.DEVNULL, stderr=open(server.log_path, "ab"), env=server.env())
        time.sleep(delay)
        assert proc.poll() is None, f"cairn exited on its own with {proc.returncode}"
        proc.kill()
        proc.wait(timeout=30)
    server.start()
    try:
        assert_delivered_exactly(server, ids_of(lines))
    finally:
        server.stop()


# --- a store that fails for a while ------------------------------------------------------


def test_store_outage_with_a_crash_in_the_middle(tmp_path):
    from test_s3_backend import Moto, config_for

    moto = Moto().start()
    server = Server(tmp_path / "data", config_for(moto) + SMALL)
    try:
        moto.s3().create_bucket(Bucket="backing")
        server.start()
        make_trail(server)
        before = generate(300, seed=51)
        server.ingest_lines(before)
        wait_for(lambda: set(delivered_ids(server)) >= set(ids_of(before)), timeout=60,
                 message="delivery before the outage")
        # The store goes away; ingest goes on; the failure is reported.
        moto.stop()
        during = generate(400, seed=52)
        server.ingest_lines(during)
        ct = server.client("cloudtrail")
        wait_for(lambda: "LatestDeliveryError" in ct.get_trail_status(Name="faults"), timeout=60,
                 message="a delivery error in GetTrailStatus")
        # The process dies while the store is down, and starts again while
        # it is still down.
        server.kill9()
        server.start()
        after = generate(300, seed=53)
        server.ingest_lines(after)
        time.sleep(2)
        # The store comes back (empty: moto keeps nothing over a restart).
        moto.start()
        moto.s3().create_bucket(Bucket="backing")
        assert_delivered_exactly(server, set(ids_of(during)) | set(ids_of(after)))
        assert "LatestDeliveryError" not in ct.get_trail_status(Name="faults")
    finally:
        server.stop()
        moto.stop()


# --- EMFILE and ENOSPC --------------------------------------------------------------------


class Producer:
    """Sends batches of records, retrying each until it is acknowledged, and
    remembers what was acknowledged and every answer it got."""

    def __init__(self, server, lines, batch=200):
        self.server, self.lines, self.batch = server, lines, batch
        self.acked, self.answers, self.sent = set(), collections.Counter(), 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        ids = ids_of(self.lines)
        i = 0
        while not self.stop.is_set() and i < len(self.lines):
            chunk = self.lines[i:i + self.batch]
            body = ('{"Records":[' + ",".join(chunk) + "]}").encode()
            try:
                status, answer = self.server.ingest_raw(body)
            except OSError as e:
                status, answer = type(e).__name__, None
            self.answers[status] += 1
            if status == 200 and not answer["failed"]:
                self.acked.update(ids[i:i + self.batch])
                i += self.batch
                self.sent = i
            else:
                time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=120)


def health(server):
    try:
        with urllib.request.urlopen(server.endpoint + "/health", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def ingest_works_or_health_red(server, probe_lines, within=30):
    """After a fault is gone: ingest succeeds again, or /health says the
    server is broken. Never errors behind a green health check. Returns
    which."""
    deadline = time.time() + within
    body = ('{"Records":[' + ",".join(probe_lines) + "]}").encode()
    while time.time() < deadline:
        try:
            status, answer = server.ingest_raw(body)
        except OSError:
            status = None
        if status == 200:
            return "works"
        if health(server) not in (200, None):
            return "red"
        time.sleep(0.5)
    raise AssertionError("ingest keeps failing while /health is green")


def test_emfile_with_idle_sockets_held(tmp_path, monkeypatch):
    limit = 96
    wrapper = tmp_path / "cairn-low-nofile"
    wrapper.write_text(f"#!/bin/bash\nulimit -n {limit}\nexec {cairn_bin()} \"$@\"\n")
    wrapper.chmod(0o755)
    config = DELIVER_CONFIG + '[limits]\nheader_read_timeout = "2s"\n'
    server = Server(tmp_path / "data", config)
    monkeypatch.setenv("CAIRN_BIN", str(wrapper))
    server.start()
    pid = server.proc.pid
    with open(f"/proc/{pid}/limits") as f:
        assert any(l.startswith("Max open files") and f" {limit} " in l for l in f), "the limit did not apply"
    lines = generate(4000, seed=61)
    held_sockets = []

    def hold():
        """Tops the idle sockets up to three times the descriptor limit."""
        held_sockets[:] = [s for s in held_sockets if s.fileno() >= 0]
        while len(held_sockets) < 3 * limit:
            try:
                held_sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
            except OSError:
                break

    try:
        make_trail(server)
        hold()
        with Producer(server, lines[:3800]) as producer:
            # Idle sockets, re-opened as the server closes them, for 8 seconds.
            deadline = time.time() + 8
            while time.time() < deadline:
                hold()
                time.sleep(0.5)
            for s in held_sockets:
                s.close()
            held_sockets = []
            wait_for(lambda: producer.sent >= 3800 or server.proc.poll() is not None or health(server) != 200,
                     timeout=120, message="the producer to finish")
        # The fault did hit the server.
        assert "os error 24" in server.log_path.read_text(errors="replace")
        print("answers under EMFILE:", dict(producer.answers))
        outcome = ingest_works_or_health_red(server, lines[3800:])
        expected = set(producer.acked) | (set(ids_of(lines[3800:])) if outcome == "works" else set())
        if outcome == "red" or server.proc.poll() is not None:
            # Loud: restart without the limit, as a supervisor would.
            server.stop()
            monkeypatch.delenv("CAIRN_BIN")
            server.start()
        assert_delivered_exactly(server, expected, unacknowledged=ids_of(lines))
    finally:
        for s in held_sockets:
            s.close()
        server.stop()


def test_enospc_on_the_wal(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the WAL's own tests cover ENOSPC")
    server = Server(mnt / "data", DELIVER_CONFIG)
    try:
        server.start()
        make_trail(server)
        lines = generate(12000, seed=71)
        # Fill the file system to a few MiB short of full, then ingest past it.
        filler = mnt / "filler"
        free = shutil.disk_usage(mnt).free
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - 6 * 1024 * 1024))
        with Producer(server, lines[:11800]) as producer:
            wait_for(lambda: any(k != 200 for k in producer.answers) or producer.sent >= 11800,
                     timeout=120, message="ENOSPC")
            refused_while_full = {k: v for k, v in producer.answers.items() if k != 200}
            assert refused_while_full, "the file system never filled"
            # Room again.
            filler.unlink()
            wait_for(lambda: producer.sent >= 11800 or health(server) != 200 or server.proc.poll() is not None,
                     timeout=60, message=f"the producer to finish or the server to go red ({producer.answers})")
        print("answers under ENOSPC:", dict(producer.answers))
        outcome = ingest_works_or_health_red(server, lines[11800:])
        expected = set(producer.acked) | (set(ids_of(lines[11800:])) if outcome == "works" else set())
        if outcome == "red" or server.proc.poll() is not None:
            server.stop()
            server.start()
        assert_delivered_exactly(server, expected, unacknowledged=ids_of(lines))
    finally:
        server.stop()
        if server.log_path.exists():
            shutil.copy(server.log_path, tmp_path / "server.log")
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
