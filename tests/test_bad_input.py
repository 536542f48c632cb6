"""Bad input across every command, table-driven.

Each case gets a workspace holding earlier results (tiny data, GloVe, a finished study, a model
bundle, a run folder) and asserts: a non-zero exit; stderr is one line that names the problem and
the fix; no traceback; no new or partial files; every earlier result byte-for-byte untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_search import FakePrepared, FakeTrainer

from conftest import make_tiny_data, make_tiny_glove, tiny_settings
from emotune.cli import main
from emotune.config import build_config, parse_sets
from emotune.progress import set_quiet
from emotune.results import study_lock
from emotune.search import StudySpec, run_search


@dataclass
class Workspace:
    root: Path
    data: Path
    glove: Path
    sets: list[str]  # --set KEY=VALUE ... for the tiny data and vectors
    study: Path  # a finished one-at-a-time lr study
    bundle: Path
    run: Path

    def sets_without(self, key: str) -> list[str]:
        """``sets`` less one setting, for cases whose flag (--glove, --epochs) sets it."""
        pairs = [v for v in self.sets[1::2] if not v.startswith(f"{key}=")]
        return [x for v in pairs for x in ("--set", v)]

    def no_glove(self) -> list[str]:
        return self.sets_without("embeddings.source")

    def file(self, name: str, text: str | bytes) -> Path:
        """A new input file for one case (created before the snapshot)."""
        path = self.root / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def data_dir(self, name: str, edit: Callable[[Path], None]) -> Path:
        """A copy of the tiny data, changed by ``edit``."""
        d = self.root / "inputs" / name
        shutil.copytree(self.data, d)
        edit(d)
        return d

    def copy(self, src: Path, name: str, edit: Callable[[Path], None]) -> Path:
        d = self.root / "inputs" / name
        shutil.copytree(src, d)
        edit(d)
        return d


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("ws")
    data, glove = make_tiny_data(root), make_tiny_glove(root)
    sets = [x for s in tiny_settings(data, glove, root / "emb") for x in ("--set", s)]
    set_quiet(True)
    study = root / "runs" / "gru-lr"
    run_search(StudySpec("gru", ("lr",), "sweep", None, 1, None, False),
               build_config(overrides=parse_sets(["epochs=3"])), FakePrepared(),
               project=study, trainer=FakeTrainer(), builder=lambda c: None)
    bundle = root / "models" / "tiny"
    bundle.mkdir(parents=True)  # a well-formed bundle whose parts the cases break
    for name, text in {"model.keras": "not a keras archive", "vocab.txt": "<pad>\n<unk>\n",
                       "labels.json": '["anger", "joy", "sadness"]',
                       "config.yaml": "model:\n  type: gru\n", "metrics.json": "{}"}.items():
        (bundle / name).write_text(text)
    from emotune.bundle import FORMAT, TOKENIZER

    (bundle / "bundle.json").write_text(json.dumps({"format": FORMAT, "tokenizer": TOKENIZER,
                                                    "max_len": 12, "emotune": "0"}))
    run = root / "runs" / "train" / "done"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"val_accuracy": 0.9}\n')
    return Workspace(root, data, glove, sets, study, bundle, run)


def _replace_line(path: Path, n: int, line: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[n] = line
    path.write_text("".join(lines))


def _zip(ws: Workspace) -> Path:
    path = ws.root / "inputs" / "glove.zip"
    path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.md", "no vectors here")
    return path


def _other_study(ws: Workspace) -> Path:
    """A copy of the study, then search it with a different parameter."""
    return ws.copy(ws.study, "other-study", lambda d: None)


def _corrupt(name: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / "kt" / "trial_0001" / name).write_text('{"status": "comp')  # torn JSON
    return edit


def _drop(part: str) -> Callable[[Path], None]:
    return lambda d: (d / part).unlink()


def _bundle_json(**change) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        meta = json.loads((d / "bundle.json").read_text())
        (d / "bundle.json").write_text(json.dumps({**meta, **change}))
    return edit


S = "--set"
# (case id, argv from the workspace, exit code, what the one line must name, its fix)
CASES: list[tuple[str, Callable[[Workspace], list[str]], int, str, str]] = [
    # -- data
    ("data: missing folder", lambda ws: ["data", "info", "--data", str(ws.root / "nope")], 1,
     "does not exist", "--data"),
    ("data: line without separator", lambda ws: ["data", "info", "--data", str(ws.data_dir(
        "nosep", lambda d: _replace_line(d / "train.txt", 4, "no label here\n")))], 1,
     "train.txt line 5", "text;label"),
    ("data: not UTF-8", lambda ws: ["data", "info", "--data", str(ws.data_dir(
        "latin1", lambda d: (d / "val.txt").write_bytes(b"caf\xe9 time;joy\n" * 5)))], 1,
     "UTF-8", "re-save"),
    ("data: empty text", lambda ws: ["data", "info", "--data", str(ws.data_dir(
        "emptytext", lambda d: _replace_line(d / "train.txt", 2, ";joy\n")))], 1,
     "train.txt line 3", "remove the row"),
    ("data: label unseen in train", lambda ws: ["data", "info", "--data", str(ws.data_dir(
        "unseen", lambda d: _replace_line(d / "val.txt", 0, "i feel odd;boredom\n")))], 1,
     "boredom", "train"),
    ("data: empty split", lambda ws: ["data", "info", "--data", str(ws.data_dir(
        "emptysplit", lambda d: (d / "test.txt").write_text("")))], 1, "test", "empty"),
    ("data: CSV without its text column", lambda ws: ["data", "info", "--data", str(ws.file(
        "rows.csv", "sentence,label\n" + "i am happy,joy\n" * 30))], 1, "text", "column"),
    ("data: a typo in a flag", lambda ws: ["data", "info", "--jsn"], 2,
     "unrecognized arguments: --jsn", "--help"),
    # -- embeddings
    ("glove: missing file", lambda ws: ["embeddings", "info", *ws.no_glove(), "--glove",
                                        str(ws.root / "glove.missing.txt")], 1,
     "glove.missing.txt", "--glove"),
    ("glove: ragged line", lambda ws: ["embeddings", "info", *ws.no_glove(), "--glove", str(ws.file(
        "glove.bad.8d.txt", ws.glove.read_text() + "broken 0.1 0.2\n"))], 1,
     "glove.bad.8d.txt line 21", "re-download"),
    ("glove: zip without vectors", lambda ws: ["embeddings", "info", *ws.no_glove(), "--glove",
                                               str(_zip(ws))], 1, "glove.zip", ".txt"),
    # -- train
    ("train: unknown model", lambda ws: ["train", "--model", "bert", *ws.sets], 2,
     "invalid choice: 'bert'", "choose from"),
    ("train: negative lr", lambda ws: ["train", *ws.sets, S, "lr=-1"], 1, "lr", "> 0"),
    ("train: dropout of 1.5", lambda ws: ["train", *ws.sets, S, "dropout=1.5"], 1,
     "dropout", "[0, 1)"),
    ("train: zero units", lambda ws: ["train", *ws.sets, S, "units=0"], 1, "units", ">= 1"),
    ("train: unknown optimizer", lambda ws: ["train", *ws.sets, S, "optimizer=nesterov"], 1,
     "nesterov", "adam"),
    ("train: unknown setting", lambda ws: ["train", *ws.sets, S, "learnin_rate=0.1"], 1,
     "learnin_rate", "learning_rate"),
    ("train: lr not a number", lambda ws: ["train", *ws.sets, S, "lr=fast"], 1, "fast",
     "number"),
    ("train: --set without =", lambda ws: ["train", *ws.sets, S, "lr"], 1, "'lr'", "key=value"),
    ("train: YAML syntax error", lambda ws: ["train", *ws.sets, "--config", str(ws.file(
        "broken.yaml", "model:\n  type: [gru\n"))], 1, "broken.yaml", "YAML"),
    ("train: missing config file", lambda ws: ["train", *ws.sets, "--config",
                                               str(ws.root / "nope.yaml")], 1,
     "nope.yaml", "--config"),
    ("train: config not a mapping", lambda ws: ["train", *ws.sets, "--config", str(ws.file(
        "list.yaml", "- lr: 0.1\n"))], 1, "list.yaml", "mapping"),
    ("train: unknown key in config", lambda ws: ["train", *ws.sets, "--config", str(ws.file(
        "typo.yaml", "model:\n  unitz: 64\n"))], 1, "unitz", "units"),
    ("train: zero epochs", lambda ws: ["train", *ws.sets_without("epochs"), "--epochs", "0"],
     1, "epochs",
     ">= 1"),
    ("train: --out exists", lambda ws: ["train", *ws.sets, "--out", str(ws.run)], 1,
     "already exists", "--out"),
    ("train: NaN loss from an absurd lr", lambda ws: ["train", *ws.sets, S, "optimizer=sgd",
                                                      S, "lr=1e39", S, "embedding=fine-tuned",
                                                      "--out", str(ws.root / "runs" / "nan")],
     1, "NaN", "lower the learning rate"),
    # -- search
    ("search: nothing to search", lambda ws: ["search", *ws.sets], 1, "say what to search",
     "--param"),
    ("search: unknown parameter", lambda ws: ["search", *ws.sets, "--param", "momentun"], 1,
     "momentun", "lr"),
    ("search: a parameter twice", lambda ws: ["search", *ws.sets, "--param", "lr,lr"], 1,
     "twice", "--param"),
    ("search: bad budget", lambda ws: ["search", *ws.sets, "--param", "lr", "--budget", "5x"],
     1, "5x", "15m"),
    ("search: zero sample", lambda ws: ["search", *ws.sets, "--param", "lr", "--sample", "0"],
     1, "--sample", "positive"),
    ("search: zero workers", lambda ws: ["search", *ws.sets, "--param", "lr", "--workers",
                                         "0"], 1, "--workers", ">= 1"),
    ("search: bad repeats", lambda ws: ["search", *ws.sets, "--param", "lr", "--repeats",
                                        "atuo"], 1, "`repeats`", "auto:MAX with MAX >= 2"),
    ("search: racing a bayesian search", lambda ws: ["search", *ws.sets, "--strategy",
                                                     "bayesian", "--repeats", "auto"], 1,
     "--repeats auto races seeds", "--strategy grid"),
    ("search: unknown strategy", lambda ws: ["search", *ws.sets, "--strategy", "anneal"], 2,
     "invalid choice: 'anneal'", "choose from"),
    ("search: empty sweep", lambda ws: ["search", *ws.sets, "--param", "lr", S, "sweeps.lr=[]"],
     1, "sweeps.lr", "non-empty list"),
    ("search: another study in the folder", lambda ws: [
        "search", *ws.sets, "--param", "dropout", "--project", str(_other_study(ws))], 1,
     "different", "--project"),
    ("chief: port out of range", lambda ws: ["chief", *ws.sets, "--param", "lr", "--port",
                                             "70000"], 1, "70000", "between 1 and 65535"),
    ("worker: chief without a port", lambda ws: ["worker", *ws.sets, "--param", "lr",
                                                 "--chief", "localhost"], 1,
     "'localhost'", "HOST:PORT"),
    # -- recommend / report
    ("recommend: not a study", lambda ws: ["recommend", "--project", str(ws.root / "nope"),
                                           "--reports-dir", str(ws.root / "reports")], 1,
     "not an emotune study", "--project"),
    ("recommend: no trials yet", lambda ws: ["recommend", "--project", str(ws.copy(
        ws.study, "empty-study", lambda d: [shutil.rmtree(t) for t in (d / "kt").glob(
            "trial_*")])), "--reports-dir", str(ws.root / "reports")], 1,
     "no trial that ran to the end", "search"),
    ("recommend: torn trial.json", lambda ws: ["recommend", "--project", str(ws.copy(
        ws.study, "torn-kt", _corrupt("trial.json"))), "--reports-dir",
        str(ws.root / "reports")], 1, "trial.json", "damaged"),
    ("report: not a study", lambda ws: ["report", "--project", str(ws.root / "nope"), "--out",
                                        str(ws.root / "reports" / "x")], 1,
     "not an emotune study", "--project"),
    ("report: torn emotune.json", lambda ws: ["report", "--project", str(ws.copy(
        ws.study, "torn-record", _corrupt("emotune.json"))), "--out",
        str(ws.root / "reports" / "torn")], 1, "emotune.json", "damaged"),
    # -- final-train
    ("final-train: nothing to train", lambda ws: ["final-train", *ws.sets], 1, "--project",
     "--config"),
    ("final-train: not a study", lambda ws: ["final-train", "--project",
                                             str(ws.root / "nope")], 1,
     "not an emotune study", "--project"),
    ("final-train: bundle exists", lambda ws: ["final-train", *ws.sets, "--config", str(
        ws.file("final.yaml", "model:\n  units: 8\n")), "--name", "tiny", "--models-dir",
        str(ws.bundle.parent)], 1, "already exists", "--name"),
    ("final-train: NaN loss", lambda ws: ["final-train", *ws.sets, "--config", str(ws.file(
        "nan.yaml", "model:\n  embedding: fine-tuned\ntrain:\n  optimizer: sgd\n  lr: 1.0e+39\n"
    )), "--models-dir", str(ws.root / "models"), "--reports-dir", str(ws.root / "reports")],
     1, "NaN", "lower the learning rate"),
    ("final-train: a seed twice", lambda ws: ["final-train", *ws.sets, "--config", str(
        ws.file("seeds.yaml", "model:\n  units: 8\n")), "--seeds", "1", "1"], 1,
     "repeats a seed", "distinct"),
    ("ensemble: a member that is no bundle", lambda ws: ["ensemble", str(ws.bundle), str(
        ws.root / "nope"), "--name", "ens", "--models-dir", str(ws.root / "models")], 1,
     "not a readable model bundle", "final-train"),
    ("baseline: missing data folder", lambda ws: ["baseline", "--data", str(ws.root / "nope"),
                                                  "--reports-dir", str(ws.root / "reports")], 1,
     "does not exist", "--data"),
    # -- leaderboard
    ("leaderboard: missing folder", lambda ws: ["leaderboard", "--reports-dir",
                                                str(ws.root / "nope")], 1, "does not exist",
     "final-train"),
    ("leaderboard: no final models", lambda ws: ["leaderboard", "--reports-dir", str(
        ws.file("empty-reports/x.txt", "").parent)], 1, "no final models", "final-train"),
    # -- predict
    ("predict: missing bundle", lambda ws: ["predict", "--model-dir", str(ws.root / "nope"),
                                            "hi"], 1, "does not exist", "final-train"),
    ("predict: bundle without model.keras", lambda ws: ["predict", "--model-dir", str(ws.copy(
        ws.bundle, "nomodel", _drop("model.keras"))), "hi"], 1, "model.keras missing",
     "final-train"),
    ("predict: bundle of another format", lambda ws: ["predict", "--model-dir", str(ws.copy(
        ws.bundle, "oldformat", _bundle_json(format=0, emotune="0.0.1"))), "hi"], 1,
     "format 0", "final-train"),
    ("predict: damaged bundle.json", lambda ws: ["predict", "--model-dir", str(ws.copy(
        ws.bundle, "torn-bundle", lambda d: (d / "bundle.json").write_text("{"))), "hi"], 1,
     "damaged", "final-train"),
    ("predict: unreadable model.keras", lambda ws: ["predict", "--model-dir", str(ws.bundle),
                                                    "hi"], 1, "cannot be loaded",
     "final-train"),
    ("predict: nothing to classify", lambda ws: ["predict", "--model-dir", str(ws.bundle)], 1,
     "nothing to classify", "--file"),
    ("predict: missing --file", lambda ws: ["predict", "--model-dir", str(ws.bundle), "--file",
                                            str(ws.root / "texts.txt")], 1,
     "does not exist", "--file"),
    ("cli: unknown command", lambda ws: ["trian"], 2, "invalid choice: 'trian'",
     "choose from"),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes; caches and study locks aside (a lock
    file only says who tried last)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "emb" not in p.parts and p.name != "study.lock"}


def _call(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's usage errors
        return int(e.code or 0)


def _commands() -> set[str]:
    """The commands `emotune --help` lists."""
    import argparse

    from emotune.cli import build_parser

    return {name for action in build_parser()._actions
            if isinstance(action, argparse._SubParsersAction) for name in action.choices}


def test_the_table_is_big_enough(workspace, tmp_path):
    """Every command has a bad-input row, and every row expects a fix besides the problem."""
    commands = _commands()
    assert len({c[0] for c in CASES}) == len(CASES)  # ids are unique
    scratch = dataclasses.replace(workspace, root=tmp_path)  # each row's inputs land here
    covered = set()
    for name, make_argv, code, problem, fix in CASES:
        argv = make_argv(scratch)
        command = next(a for a in argv if not a.startswith("-"))
        if command in commands:
            covered.add(command)
        else:  # only the row about an unknown command runs none
            assert code == 2 and "invalid choice" in problem, (name, command)
        assert code in (1, 2), name  # a user error or a usage error
        assert problem.strip() and fix.strip(), name
        assert fix not in problem and problem not in fix, f"{name}: names no fix of its own"
    assert commands - covered == set(), "commands without a bad-input row"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, workspace, capsys, monkeypatch):
    name, make_argv, code, problem, fix = case
    monkeypatch.chdir(workspace.root)  # default output folders land in the snapshot
    argv = make_argv(workspace)  # creates this case's inputs
    capsys.readouterr()
    before = _snapshot(workspace.root)
    assert _call(argv) == code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert problem in lines[0] and fix in lines[0], lines[0]
    assert _snapshot(workspace.root) == before  # nothing new, nothing partial, nothing changed


def test_a_search_into_a_held_project_changes_nothing(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace.root)
    before = _snapshot(workspace.root)
    with study_lock(workspace.study, "emotune search (another terminal)"):
        assert _call(["search", *workspace.sets, "--param", "lr", "--project",
                      str(workspace.study)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "in use by another search" in err and "--project" in err
    assert _snapshot(workspace.root) == before
