"""trusttrace.fetch against an HTTP server on 127.0.0.1 started here: good, truncated, wrong, offline, cached."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest
from trusttrace.errors import TrustTraceError
from trusttrace.fetch import fetch_verified

CONTENT = b"statement,label\nThe sky is blue.,1\nThe sky is green.,0\n" * 50


class Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        Handler.requests.append(self.path)
        if self.path == "/truncated.csv":
            body = CONTENT
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])  # the connection ends early
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "good.csv").write_bytes(CONTENT)
    (root / "other.csv").write_bytes(CONTENT.replace(b"blue", b"grey"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


SHA = hashlib.sha256(CONTENT).hexdigest()


def test_good_download_then_cached(server, tmp_path):
    destination = tmp_path / "data" / "dim.csv"
    Handler.requests.clear()
    assert fetch_verified(f"{server}/good.csv", SHA, destination).read_bytes() == CONTENT
    assert fetch_verified(f"{server}/good.csv", SHA, destination) == destination
    assert Handler.requests == ["/good.csv"]  # the second call fetched nothing
    assert not list(destination.parent.glob(".*download"))


def test_truncated_download_is_not_kept(server, tmp_path):
    destination = tmp_path / "dim.csv"
    with pytest.raises(TrustTraceError, match="cannot download|expected " + SHA):
        fetch_verified(f"{server}/truncated.csv", SHA, destination)
    assert not destination.exists() and not list(tmp_path.iterdir())


def test_wrong_file_fails_with_both_checksums(server, tmp_path):
    destination = tmp_path / "dim.csv"
    other = hashlib.sha256(CONTENT.replace(b"blue", b"grey")).hexdigest()
    with pytest.raises(TrustTraceError, match=f"sha256 {other}, expected {SHA}"):
        fetch_verified(f"{server}/other.csv", SHA, destination)
    assert not list(tmp_path.iterdir())


def test_changed_local_copy_is_replaced_by_a_verified_one(server, tmp_path):
    destination = tmp_path / "dim.csv"
    destination.write_bytes(b"statement,label\nstale,1\n")
    fetch_verified(f"{server}/good.csv", SHA, destination)
    assert destination.read_bytes() == CONTENT


def test_offline_names_url_and_destination(tmp_path):
    destination = tmp_path / "dim.csv"
    # A port nobody listens on: the connection is refused at once, as offline.
    with pytest.raises(
        TrustTraceError, match=rf"cannot download http://127.0.0.1:9/x.csv .*put the file at {destination}"
    ):
        fetch_verified("http://127.0.0.1:9/x.csv", SHA, destination, timeout=5)


def test_offline_with_a_valid_copy_needs_no_network(tmp_path):
    destination = tmp_path / "dim.csv"
    destination.write_bytes(CONTENT)
    assert fetch_verified("http://127.0.0.1:9/x.csv", SHA, destination) == destination


def test_bad_checksum_string(tmp_path):
    with pytest.raises(TrustTraceError, match="64 hex digits"):
        fetch_verified("http://127.0.0.1:9/x.csv", "abc", tmp_path / "x.csv")


def test_url_dimension_config_checks(tmp_path):
    from trusttrace.config import check_config, validate_schema

    config = {
        "models": {"m": {"source": "local", "checkpoints": [{"name": "c", "path": str(tmp_path)}]}},
        "dimensions": {"d": {"csv": "d.csv", "url": "http://127.0.0.1:9/d.csv", "trustworthy_label": 1}},
        "data_dir": str(tmp_path),
    }
    with pytest.raises(TrustTraceError, match="url and sha256 go together"):
        validate_schema(config)
        check_config(config, check_files=False)


def test_local_or_fetched_uses_the_configured_path(server, tmp_path):
    from trusttrace.fetch import local_or_fetched

    assert local_or_fetched(tmp_path / "plain.csv") == tmp_path / "plain.csv"
    assert local_or_fetched(tmp_path / "got.csv", f"{server}/good.csv", SHA).read_bytes() == CONTENT


@pytest.mark.workflow
def test_workflow_fetches_a_url_dimension_once(server, tmp_path):
    """prepare_dimension downloads the CSV into data_dir, verifies it and splits it; a rerun fetches nothing."""
    import yaml
    from helpers import REPO, run_workflow

    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    rows = "".join(f"statement {i} is {'true' if i % 2 else 'false'}.,{i % 2}\n" for i in range(80))
    body = ("statement,label\n" + rows).encode()
    served = tmp_path / "served.csv"
    served.write_bytes(body)
    data_dir = tmp_path / "data"
    config["data_dir"] = str(data_dir)
    config["dimensions"] = {
        "fetched": {
            "csv": "fetched.csv",
            "url": f"file://{served}",
            "sha256": hashlib.sha256(body).hexdigest(),
            "trustworthy_label": 1,
            "group_by": "none",
        }
    }
    workdir = tmp_path / "run"
    run_workflow(workdir, config, "--cores", "1", "--until", "prepare_dimension")
    assert (data_dir / "fetched.csv").read_bytes() == body
    assert (workdir / "results" / "data" / "fetched.parquet").is_file()
    config["dimensions"]["fetched"]["url"] = f"{server}/does-not-matter.csv"  # a valid copy is never refetched
    config["dimensions"]["fetched"]["sha256"] = hashlib.sha256(body).hexdigest()
    Handler.requests.clear()
    run_workflow(workdir, config, "--cores", "1", "--until", "prepare_dimension")
    assert Handler.requests == []


def test_url_without_a_path_to_keep_it_is_refused(tmp_path):
    from trusttrace.config import check_config, validate_schema

    config = {
        "models": {"m": {"source": "local", "checkpoints": [{"name": "c", "path": str(tmp_path)}]}},
        "dimensions": {
            "d": {"demo": "privacy", "url": "http://127.0.0.1:9/d.csv", "sha256": SHA, "trustworthy_label": 0}
        },
    }
    validate_schema(config)
    with pytest.raises(TrustTraceError, match="url needs csv, the path to keep the download at"):
        check_config(config, check_files=False)
