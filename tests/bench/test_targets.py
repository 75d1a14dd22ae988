"""The TARGET lines benchmarks end with, and benchmarks/run_all.py's table of them (``make
bench``): parsed, gathered per script, and "not measured" where a script is missing, fails or
hangs. The scripts run here are tiny stand-ins; nothing is timed."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

from fcnseg.bench.targets import format_target

RUN_ALL = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"


# benchmarks/run_all.py reads the lines back, runs the scripts and tables their targets.
run_all_module = load_benchmark("run_all")
BenchmarkRun = run_all_module.BenchmarkRun
Target = run_all_module.Target
format_targets_table = run_all_module.format_targets_table
parse_targets = run_all_module.parse_targets
run_benchmark = run_all_module.run_benchmark


def _script(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_a_target_line_reads_back_as_written() -> None:
    line = format_target("train_loop_ratio", 0.9631, 0.95)
    assert line == "TARGET train_loop_ratio measured=0.9631 goal=0.95 ok=true"
    assert parse_targets(f"some output\n{line}\nmore output\n") == [
        Target("train_loop_ratio", 0.9631, 0.95, True)]


def test_ok_defaults_to_measured_at_least_goal_but_the_benchmark_may_decide() -> None:
    assert format_target("ratio", 0.5, 0.95).endswith("ok=false")
    # lower is better: the benchmark says so through ok
    assert format_target("mean_iu_delta", 0.02, 0.1, ok=True).endswith("ok=true")


def test_further_fields_after_ok_are_kept() -> None:
    [target] = parse_targets("TARGET x measured=1.5 goal=1 ok=true unit=img/s\n")
    assert target.extra == {"unit": "img/s"} and target.ok


def test_a_malformed_target_line_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="TARGET speed measured=fast"):
        parse_targets("TARGET speed measured=fast goal=1 ok=true\n")
    with pytest.raises(ValueError, match="ok must be true or false"):
        parse_targets("TARGET speed measured=1 goal=1 ok=maybe\n")


def test_a_name_with_spaces_is_refused() -> None:
    with pytest.raises(ValueError, match="without spaces"):
        format_target("train loop", 1.0, 0.95)


def test_a_missing_script_shows_each_expected_target_as_not_measured(tmp_path: Path) -> None:
    run = run_benchmark(tmp_path / "inference_peak.py", expected=("bf16_peak", "fp32_peak"))
    assert run.status == "missing"
    table = format_targets_table([run])
    assert table.count("not measured: script missing") == 2
    assert "bf16_peak" in table and "fp32_peak" in table


def test_the_targets_a_script_prints_are_gathered_with_its_arguments(tmp_path: Path) -> None:
    script = _script(tmp_path / "bench.py", """
        import sys
        print("working...")
        print(f"TARGET got_quick measured={int('--quick' in sys.argv)} goal=1 ok=true")
        print("TARGET slow measured=0.8 goal=0.95 ok=false")
    """)
    run = run_benchmark(script, ["--quick"], expected=("got_quick", "slow", "never_printed"),
                        echo=None)
    assert run.status == "ok"
    assert [(t.name, t.measured, t.ok) for t in run.targets] == [
        ("got_quick", 1.0, True), ("slow", 0.8, False)]
    table = format_targets_table([run])
    assert "| yes" in table and "| NO" in table
    assert "| never_printed" in table and "not measured: not printed by the script" in table


def test_a_failing_script_keeps_what_it_measured_and_says_it_failed(tmp_path: Path) -> None:
    script = _script(tmp_path / "bench.py", """
        print("TARGET first measured=2 goal=1 ok=true")
        raise SystemExit(3)
    """)
    run = run_benchmark(script, expected=("first", "second"), echo=None)
    assert run.status == "failed (exit 3)"
    assert [t.name for t in run.targets] == ["first"]
    rows = {name: note for name, _, note in run.rows()}
    assert rows == {"first": "", "second": "failed (exit 3)"}


def test_a_script_that_prints_no_target_is_not_measured(tmp_path: Path) -> None:
    run = run_benchmark(_script(tmp_path / "bench.py", "print('done')\n"), echo=None)
    assert run.status == "no TARGET lines"
    assert "not measured: no TARGET lines" in format_targets_table([run])


def test_a_hung_script_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    script = _script(tmp_path / "bench.py", """
        import time
        print("TARGET early measured=1 goal=1 ok=true", flush=True)
        time.sleep(600)
    """)
    run = run_benchmark(script, expected=("early", "late"), timeout=3, echo=None)
    assert run.status.startswith("timed out")
    assert [t.name for t in run.targets] == ["early"]


def _load_run_all(monkeypatch: pytest.MonkeyPatch, folder: Path):
    spec = importlib.util.spec_from_file_location("run_all_under_test", RUN_ALL)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look it up there
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", folder)
    return module


def test_run_all_quick_runs_each_script_there_is_and_reports_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_all = _load_run_all(monkeypatch, tmp_path)
    _script(tmp_path / "train_loop.py", """
        import sys
        assert "--quick" in sys.argv
        print("TARGET train_loop_ratio measured=0.97 goal=0.95 ok=true")
    """)
    out_json = tmp_path / "targets.json"
    assert run_all.main(["--quick", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("| benchmark"):]
    assert "train_loop_ratio" in table and "0.97" in table and "| yes" in table
    for bench in run_all.BENCHMARKS:
        if bench.script != "train_loop.py":
            for name in bench.expected:
                assert f"| {name}" in table
    assert table.count("not measured: script missing") == sum(
        len(b.expected) for b in run_all.BENCHMARKS if b.script != "train_loop.py")
    assert "fcnseg bench" not in table  # the full suite only runs without --quick
    saved = json.loads(out_json.read_text())
    assert saved["quick"] is True
    assert {r["script"]: r["status"] for r in saved["runs"]}["train_loop.py"] == "ok"


def test_run_all_check_fails_when_a_target_is_missed_or_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_all = _load_run_all(monkeypatch, tmp_path)
    _script(tmp_path / "train_loop.py",
            "print('TARGET train_loop_ratio measured=0.97 goal=0.95 ok=true')\n")
    args = ["--quick", "--only", "train_loop", "--json", str(tmp_path / "t.json")]
    assert run_all.main([*args, "--check"]) == 0
    assert run_all.main(["--quick", "--only", "train_loop,inference_peak", "--check",
                         "--json", str(tmp_path / "t.json")]) == 1


def test_rows_of_a_run_without_expected_targets_still_say_why() -> None:
    run = BenchmarkRun(script="x.py", status="failed (exit 1)")
    assert run.rows() == [("(any)", None, "failed (exit 1)")]

