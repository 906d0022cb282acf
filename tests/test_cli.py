"""``algo-mcp serve`` refuses what it cannot do at once with a message rather than a traceback (a taken
port); what it finds later (a missing GPU, a model that will not load) takes down only that tool
(``test_startup``). ``algo-mcp cluster`` shows and stops the local cluster (``test_local_cluster``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mcp_server.listen import listening_socket
from tests.conftest import ROOT


def test_serve_on_a_taken_port_fails_before_starting_anything(tmp_path: Path):
    with listening_socket("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "mcp_server", "serve", "--transport", "http", "--port", str(port)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"),
                                   "FASTMCP_CHECK_FOR_UPDATES": "off"})
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in proc.stderr
    assert "--port or SERVICE_PORT" in proc.stderr and "Traceback" not in proc.stderr
    assert "ray" not in proc.stderr.lower()  # refused before Ray was started
    assert not (tmp_path / "data" / "cluster").exists()  # ... and before the local cluster
