"""python -m export.gpu_check: reports whether CUDA runs here, and its GPU path runs end to end
(on CUDA where there is one; elsewhere on ONNX Runtime's CPU provider and PyTorch on the CPU,
as the stand-in accelerator)."""
import json

from export.gpu_check import main


def test_it_reports_what_cuda_it_found_and_times_accordingly(clip_model_dir, tmp_path, mosi_dir):
    main([str(clip_model_dir), "--out", str(tmp_path), "--runs", "5", "--batch", "8", "--data-dir", str(mosi_dir)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    if report["cuda"]["ort_cuda"]:  # a GPU machine: the CUDA path ran, with parity against the CPU
        assert "note" not in report and report["parity"]["fp32"]["passed"]
        assert {"ort_cuda_fp32", "ort_cuda_fp16", "ort_cpu_fp32"} <= set(report["speed"])
        assert report["cuda"]["device_name"] in (tmp_path / "gpu_check.md").read_text()
    else:
        assert "not available" in report["note"]
        assert 0 < report["cpu_fp32"]["batch1_p50_ms"] <= report["cpu_fp32"]["batch1_p95_ms"]
        assert "no CUDA device" in (tmp_path / "gpu_check.md").read_text()
    # The folder had no fp16 variant: one was made, beside a copy, and the original is untouched.
    assert (tmp_path / "model" / "model.fp16.onnx").is_file() and not (clip_model_dir / "model.fp16.onnx").exists()


def test_the_gpu_path_exports_a_run_checks_parity_and_times_every_runtime(clip_model_dir, tmp_path, mosi_dir):
    run = clip_model_dir.parent / "ckpt"  # the training run clip_model_dir was exported from
    main([str(run), "--out", str(tmp_path), "--runs", "5", "--batch", "8", "--data-dir", str(mosi_dir),
          "--provider", "CPUExecutionProvider"])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["parity"]["fp32"]["passed"] and report["parity"]["fp32"]["max_abs_diff"]["score"] == 0.0
    assert report["parity"]["fp16"]["max_abs_diff"]["score"] > 0  # fp16 really ran in half precision
    assert set(report["speed"]) == {"ort_cpu_fp32", "ort_cpu_fp16", "pytorch_cpu_eager"}
    assert all(s["batch8_samples_per_s"] > 0 for s in report["speed"].values())
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| ORT CPU fp16 |" in table and "pytorch_cpu_eager" in table
