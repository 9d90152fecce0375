"""One server per data dir (issue 11): a second `cairn serve` on a data dir in
use refuses to start and names the holder; after the holder is killed the data
dir is free again."""

import subprocess

from conftest import ORG_CONFIG, Server, cairn_bin, free_port


def test_second_server_on_a_data_dir_in_use_refuses_to_start(server):
    second = subprocess.run(
        [cairn_bin(), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(server.data_dir),
         "--config", str(server.config_path)],
        env=server.env(), capture_output=True, text=True, timeout=60,
    )
    assert second.returncode != 0
    assert "in use by another cairn server" in second.stderr, second.stderr
    assert f"pid {server.proc.pid}" in second.stderr, second.stderr
    # The first server is untouched and still answers.
    assert server.aws("s3api", "list-buckets")["Buckets"] == []


def test_data_dir_is_free_again_after_kill_9(tmp_path):
    first = Server(tmp_path / "data", ORG_CONFIG).start()
    first.kill9()
    again = Server(tmp_path / "data", ORG_CONFIG).start()
    try:
        assert again.aws("s3api", "list-buckets")["Buckets"] == []
    finally:
        again.stop()
