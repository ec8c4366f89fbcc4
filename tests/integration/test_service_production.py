"""The service in production: readiness, Prometheus metrics (scraped by a real
Prometheus), and corrections into the feedback inbox.

Here: the cases that start processes or servers; the others are in tests/unit/test_service_production.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse

import httpx

from harness.real_parts import Service, free_port, stop_group, wait_for
from tests.helpers import digit, png


# A real uvicorn and a real Prometheus.
def test_a_real_prometheus_scrapes_the_counts_the_requests_made(trained, tmp_path):
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is needed (.ci/run installs it: apt-get install prometheus)"
    with Service(trained.model, tmp_path) as service:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "mnistflow", "metrics_path": "/metrics",
                                "static_configs": [{"targets": [service.url.removeprefix("http://")]}]}]}))
        log = open(tmp_path / "prometheus.log", "w")
        prometheus = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                       f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        try:
            for _ in range(5):
                assert httpx.post(f"{service.url}/predict", content=png(digit()),
                                  headers={"content-type": "image/png"}).status_code == 200

            def query(promql: str) -> float | None:
                url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(promql)}"
                result = httpx.get(url, timeout=5).json()["data"]["result"]
                return float(result[0]["value"][1]) if result else None

            count = 'sum(mnistflow_http_requests_total{job="mnistflow",route="/predict",status="200"})'
            assert wait_for(lambda: query(count) == 5, "Prometheus to scrape 5 predictions", 60, every=0.5,
                            tolerate=(httpx.HTTPError, KeyError, ValueError))
            assert query('sum(mnistflow_images_predicted_total{job="mnistflow"})') == 5
            assert query('mnistflow_ready{job="mnistflow"}') == 1
        finally:
            stop_group(prometheus, grace=10)
            log.close()


def test_a_taken_port_is_one_line_naming_it_and_exit_2(trained, tmp_path):
    """The port is bound before "serving on" is said: a second service on it is the user's
    one line, not uvicorn's error and exit 3."""
    import sys

    from tests.helpers import clean_env, run

    with Service(trained.model, tmp_path) as service:
        result = run([sys.executable, "-m", "serving.service", "--model", str(trained.model), "--port",
                      str(service.port), "--no-feedback"], tmp_path, clean_env())
        assert httpx.get(f"{service.url}/health").status_code == 200  # the first one serves on
    assert result.returncode == 2 and "Traceback" not in result.stderr and "serving" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"mnistflow: error: --port {service.port}: cannot listen on 127.0.0.1:{service.port} (Address already in use)")
