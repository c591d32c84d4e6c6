"""``mbcd bench extract`` runs end to end on a few tiny clips and reports sane figures (not a timed test)."""

from __future__ import annotations

import json
from pathlib import Path

from mbcd.stages import bench


def test_bench_extract_reports_every_figure(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["extract", "--clips", "3", "--size", "32", "--frames", "12", "--repeats", "1", "--json", str(out)]
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["throughput"]) == {"rgb", "flow", "audio"}
    for figures in result["throughput"].values():
        assert figures["clips_per_s_1"] > 0 and figures["clips_per_s_2"] > 0 and figures["cpu_efficiency"] > 0
    o = result["overheads"]
    assert o["seconds_flow_step_bare"] > 0 and o["frames_vs_get_batch"] > 0
    printed = capsys.readouterr().out
    assert "flow overhead vs bare cv2 loop" in printed and "frames vs bare decord get_batch" in printed
    assert result["bare_decord"]["speedup"] > 0 and result["bare_decord"]["cores_one_loop"] > 0
    assert "independent processes" in printed
