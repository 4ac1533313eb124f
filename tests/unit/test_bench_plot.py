"""bench/plot.py draws scripts/bench's figures from its stored results."""

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLOT = os.path.join(ROOT, "bench", "plot.py")
RESULTS = os.path.join(ROOT, "bench", "results")


def plot(directory):
    return subprocess.run([sys.executable, PLOT, str(directory)],
                          capture_output=True, text=True, timeout=120)


def svg_text(path):
    """The text of an SVG's <text> elements (svg.fonttype none keeps them)."""
    tree = ET.parse(path)
    return " ".join("".join(t.itertext()) for t in tree.iter()
                    if t.tag.endswith("}text"))


def test_figures_from_the_committed_results(tmp_path):
    for name in ("kmod.json", "scaling.json"):
        shutil.copy(os.path.join(RESULTS, name), tmp_path)
    r = plot(tmp_path)
    assert r.returncode == 0, r.stderr
    names = {"throughput.svg", "rx-cost-tuples.svg", "rx-cost-ports.svg",
             "rtt.svg"}
    assert {os.path.basename(x.split()[-1]) for x in r.stdout.splitlines()} == names
    text = svg_text(tmp_path / "throughput.svg")
    assert "MultiStack port" in text and "AF_PACKET sendmmsg" in text
    assert "RX, kpps" in text and "TX, Gbit/s" in text
    text = svg_text(tmp_path / "rx-cost-tuples.svg")
    assert "65,536" in text and "frames to one tuple" in text
    assert "OS sockets" in svg_text(tmp_path / "rx-cost-ports.svg")
    text = svg_text(tmp_path / "rtt.svg")
    assert "99th percentile" in text and "MultiStack port" in text


def test_points_that_could_not_be_measured_are_left_out(tmp_path):
    data = {"kind": "scaling", "quick": True, "kernel": "k", "vcpus": 2,
            "tuples": [{"n": 1, "port_spread": 500.0, "port_one": None,
                        "os_spread": -3.0, "os_one": None}],
            "ports": [{"n": 1, "port_spread": None, "os_spread": None}]}
    (tmp_path / "scaling.json").write_text(json.dumps(data))
    r = plot(tmp_path)
    assert r.returncode == 0, r.stderr
    # one port point only; no ports or RTT figure: nothing to draw there
    assert sorted(os.listdir(tmp_path)) == ["rx-cost-tuples.svg", "scaling.json"]
    text = svg_text(tmp_path / "rx-cost-tuples.svg")
    assert "spread over all tuples" in text and "OS sockets" not in text


def test_bad_input_is_one_line_and_status_2(tmp_path):
    r = plot(tmp_path)
    assert r.returncode == 2
    assert "neither kmod.json nor scaling.json" in r.stderr
    (tmp_path / "kmod.json").write_text("{not json")
    r = plot(tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "kmod.json" in r.stderr
