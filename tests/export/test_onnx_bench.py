"""scripts/bench_onnx.py runs end to end (no timing is asserted)."""
import json
import sys

import pytest
from conftest import EXAMPLES, ROOT, need_shared

pytest.importorskip("onnxruntime", reason="onnxruntime not installed (the test extra)")
sys.path.insert(0, str(ROOT / "scripts"))
import bench_onnx  # noqa: E402

from caffelite import runtime  # noqa: E402


@pytest.mark.timeout(120)
def test_bench_onnx_reports_both_sides(monkeypatch, capsys):
    need_shared(EXAMPLES / "mnist/lenet.prototxt")
    saved = runtime.num_threads(), runtime.blas_threads()
    monkeypatch.setattr(sys, "argv", ["bench_onnx.py", "--nets", "lenet:2", "--iters", "2",
                                      "--warmup", "1", "--threads", "1", "--json"])
    try:
        bench_onnx.main()
    finally:
        runtime.set_num_threads(saved[0])
        if saved[1] is not None:
            runtime.set_blas_threads(saved[1])
    report = json.loads(capsys.readouterr().out)
    row = report["results"][0]
    assert (row["net"], row["batch"]) == ("lenet", 2)
    assert set(row["ms"]) == {"caffelite", "onnxruntime", "ort_nospin"}
    assert row["ratio"]["onnxruntime"]["median"] > 0
