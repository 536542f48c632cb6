import subprocess

from emotune import provenance


def fake_git(monkeypatch, changed: str):
    """git answers HEAD = abcdef1234 and ``changed`` as the status of whatever paths it is asked
    about; returns the list of paths each status call named."""
    asked: list[list[str]] = []

    def run(cmd, **kwargs):
        if "rev-parse" in cmd:
            return subprocess.CompletedProcess(cmd, 0, "abcdef1234\n", "")
        paths = cmd[cmd.index("--") + 1:]
        asked.append(paths)
        hit = any(changed.startswith(p) for p in paths) if changed else False
        return subprocess.CompletedProcess(cmd, 0, f" M {changed}\n" if hit else "", "")

    monkeypatch.setattr(provenance.subprocess, "run", run)
    return asked


def test_results_are_dirty_only_for_code_changes(monkeypatch):
    fake_git(monkeypatch, "reports/gru-all/summary.md")
    assert provenance.git_commit() == ("abcdef1234", False)
    fake_git(monkeypatch, "emotune/train.py")
    assert provenance.git_commit() == ("abcdef1234", True)
    fake_git(monkeypatch, "benchmarks/bench_members.py")
    assert provenance.git_commit() == ("abcdef1234", False)  # not emotune's results' code


def test_benchmark_header_counts_benchmark_changes_as_dirty(monkeypatch):
    asked = fake_git(monkeypatch, "benchmarks/bench_members.py")
    line = provenance.benchmark_header("TF intra-op threads 1")
    assert "benchmarks" in asked[-1] and "emotune" in asked[-1]
    cpu, simd = provenance.cpu_model()
    assert line.startswith(f"commit abcdef1+dirty; {cpu}, {simd}, ")
    assert line.endswith(" cores; TF intra-op threads 1")
    fake_git(monkeypatch, "")
    assert provenance.benchmark_header().startswith("commit abcdef1; ")


def test_not_a_checkout(monkeypatch):
    monkeypatch.setattr(provenance.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 128, "", "fatal"))
    assert provenance.git_commit() == ("unknown", None)
    assert provenance.benchmark_header().startswith("commit unknown; ")
