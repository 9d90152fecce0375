"""Helpers the benchmarks share: a loopback port, waiting for a server, reading /metrics,
the advanced event selectors that choose every generated record."""

import socket
import time
import urllib.request


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(endpoint, attempts=200):
    """Waits (at most attempts × 50 ms) for GET /health to answer."""
    for _ in range(attempts):
        try:
            urllib.request.urlopen(endpoint + "/health", timeout=1)
            return
        except OSError:
            time.sleep(0.05)


def metric(endpoint, name):
    """One value of the server's /metrics (0 when absent)."""
    with urllib.request.urlopen(endpoint + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


# Advanced event selectors that choose every record the generator writes: management
# events, and the data events of the three resource types it uses.
EVERY_RECORD_SELECTORS = [
    {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
] + [
    {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                        {"Field": "resources.type", "Equals": [resource_type]}]}
    for resource_type in ("AWS::S3::Object", "AWS::Lambda::Function", "AWS::DynamoDB::Table")
]
