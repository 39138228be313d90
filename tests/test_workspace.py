"""The workspace file (avslkit.yaml), the short forms' defaults, run numbering, split discovery and --labeled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from avslkit.cli.main import app
from avslkit.data.splits import plan_stores
from avslkit.errors import AvslError
from avslkit.semisup.labeled import parse_labeled_spec, resolve_val_labeled, split_labeled
from avslkit.workflow import eval_defaults, fill_train_config, train_out, viz_defaults
from avslkit.workspace import Workspace, WorkspaceError, settings

runner = CliRunner()


@pytest.fixture()
def ws_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- the file ------------------------------------------------------------------------------------
def test_find_nearest_parent_else_cwd(tmp_path):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert Workspace.find(deep).root == deep and not Workspace.find(deep).exists
    touch(tmp_path / "a" / "avslkit.yaml", "version: 1\n")
    found = Workspace.find(deep)
    assert found.root == tmp_path / "a" and found.exists


def test_record_round_trip_relative_paths_and_runs(ws_dir):
    ws = Workspace(ws_dir)
    store = touch(ws_dir / "data" / "train.h5")
    outside = touch(ws_dir.parent / f"{ws_dir.name}-outside.json", "[]")
    ws.record({"stores.train": store, "annotations": outside})
    ws.record(run=ws_dir / "runs" / "dmt")
    ws.record(run=ws_dir / "runs" / "dmt2")
    ws.record(run=ws_dir / "runs" / "dmt")  # re-recorded: becomes the latest again, no duplicate
    data = yaml.safe_load((ws_dir / "avslkit.yaml").read_text())
    assert data["stores"] == {"train": "data/train.h5"}
    assert data["annotations"] == str(outside)  # outside the workspace: absolute
    assert data["runs"] == ["runs/dmt2", "runs/dmt"]
    assert (ws_dir / "avslkit.yaml").read_text().startswith("# avslkit workspace")
    assert Workspace.find().get("stores.train") == store
    assert [p.name for p in ws_dir.iterdir() if p.name.startswith(".avslkit.yaml.") and p.suffix == ".tmp"] == []


def test_record_keeps_hand_edits_and_other_commands_entries(ws_dir):
    touch(ws_dir / "avslkit.yaml", "stores:\n  test: data/test.h5\nlast_eval: runs/x/eval/metrics.json\n")
    a, b = Workspace.find(), Workspace.find()  # two commands holding the workspace at once
    a.record({"stores.train": ws_dir / "data" / "train.h5"})
    b.record({"annotations": ws_dir / "toy" / "annotations.json"})
    data = yaml.safe_load((ws_dir / "avslkit.yaml").read_text())
    assert data["stores"] == {"test": "data/test.h5", "train": "data/train.h5"}
    assert data["annotations"] == "toy/annotations.json" and data["last_eval"] == "runs/x/eval/metrics.json"


@pytest.mark.parametrize("text, line, needle", [
    ("version: 1\nstores:\n  train: [data/train.h5\n", 4, "not valid YAML"),
    ("stores:\n  train: [data/train.h5\nannotations: a.json\n", 3, "while parsing a flow sequence from line 2"),
    ("version: 1\nstores: data/train.h5\n", 2, "'stores' must be a mapping"),
    ("version: 1\nstores:\n  trian: data/train.h5\n", 3, "'stores.trian' must be one of"),
    ("version: 1\nannotaions: toy/a.json\n", 2, "unknown entry 'annotaions'"),
    ("version: 1\n\nruns: runs/dmt\n", 3, "'runs' must be a list"),
    ("- a\n- b\n", 1, "must be a mapping"),
])
def test_damaged_file_names_the_line_and_is_not_overwritten(ws_dir, text, line, needle):
    path = touch(ws_dir / "avslkit.yaml", text)
    ws = Workspace.find()
    with pytest.raises(WorkspaceError) as err:
        ws.record({"stores.train": ws_dir / "data" / "train.h5"})
    assert str(err.value).startswith(f"avslkit.yaml:{line}: ") and needle in str(err.value)
    assert path.read_text() == text  # nothing overwritten
    res = runner.invoke(app, ["status"])
    assert res.exit_code == 1 and f"avslkit.yaml:{line}:" in res.output and len(res.output.strip().splitlines()) == 1


def test_entry_naming_a_missing_file_is_an_error_with_line_and_fix(ws_dir):
    touch(ws_dir / "avslkit.yaml", "version: 1\nstores:\n  train: data/gone.h5\n")
    with pytest.raises(WorkspaceError) as err:
        Workspace.find().get("stores.train")
    msg = str(err.value)
    assert msg.startswith("avslkit.yaml:3: stores.train names data/gone.h5, which no longer exists")
    assert "avslkit preprocess" in msg and "delete that line" in msg
    res = runner.invoke(app, ["train", "dmt", "--labeled", "4"])
    assert res.exit_code == 1 and "avslkit.yaml:3: stores.train names data/gone.h5" in res.output
    assert not (ws_dir / "runs" / "dmt").exists()  # the new run directory was removed again


# -- precedence and printed defaults ---------------------------------------------------------------
def test_explicit_values_win_and_defaults_are_announced(ws_dir, capsys):
    from avslkit.utils.console import stderr_console

    store = touch(ws_dir / "data" / "train.h5")
    ann = touch(ws_dir / "toy" / "annotations.json", "[]")
    Workspace(ws_dir).record({"stores.train": store, "annotations": ann})
    ws = Workspace.find()
    with stderr_console.capture() as cap:
        cfg = {"data": {"train": "mine.h5", "annotations": None}}
        used = fill_train_config(cfg, ws)
    out = cap.get()
    assert cfg["data"]["train"] == "mine.h5"  # the flag wins, nothing printed for it
    assert cfg["data"]["annotations"] == "toy/annotations.json" and used == {"annotations": "toy/annotations.json"}
    assert "using annotations toy/annotations.json (avslkit.yaml)" in out and "train store" not in out
    # a method without boxes (data.annotations absent) takes only the store
    cfg = {"data": {"train": None}}
    assert fill_train_config(cfg, Workspace.find()) == {"stores.train": "data/train.h5"} and "annotations" not in cfg["data"]


def test_train_without_store_anywhere_says_what_to_run(ws_dir):
    with pytest.raises(AvslError, match="run 'avslkit preprocess VIDEOS/' first"):
        fill_train_config({"data": {"train": None}}, Workspace.find())


def test_eval_and_viz_without_earlier_steps_are_one_line_errors(ws_dir):
    res = runner.invoke(app, ["eval", "--extended"])
    assert res.exit_code == 1 and "nothing to evaluate: no run yet" in res.output
    res = runner.invoke(app, ["viz"])
    assert res.exit_code == 1 and "nothing to draw: no evaluation yet" in res.output
    assert not (ws_dir / "avslkit.yaml").exists()


def test_eval_defaults_use_latest_run_and_write_beside_it(ws_dir):
    run = ws_dir / "runs" / "dmt2"
    run.mkdir(parents=True)
    store = touch(ws_dir / "data" / "test.h5")
    touch(ws_dir / "data" / "test.h5.extended.csv", "video,audio,label\n")
    ws = Workspace(ws_dir)
    ws.record({"stores.test": store}, run=run)
    cfg = {"maps": None, "baseline": None, "checkpoint": None, "out": None, "test": None, "annotations": None,
           "test_list": None, "extended": True, "extended_csv": None, "save_maps": False}
    used = eval_defaults(cfg, Workspace.find())
    assert cfg["checkpoint"] == "runs/dmt2" and cfg["out"] == "runs/dmt2/eval/metrics.json" and cfg["save_maps"]
    assert used == {"runs": "runs/dmt2", "stores.test": "data/test.h5", "extended": "data/test.h5.extended.csv"}
    explicit = dict(cfg, checkpoint="other", out=None, test="t.h5")
    assert eval_defaults(explicit, Workspace.find()) == {} and explicit["out"] is None  # explicit run: old default


def test_viz_defaults(ws_dir):
    metrics = touch(ws_dir / "runs" / "dmt" / "eval" / "metrics.json", "{}")
    Workspace(ws_dir).record({"last_eval": metrics})
    assert viz_defaults([], None, Workspace.find()) == ([Path("runs/dmt/eval/metrics.json")], Path("runs/dmt/viz"))
    assert viz_defaults([Path("m.json")], None, Workspace.find()) == ([Path("m.json")], Path("viz"))
    assert viz_defaults([], Path("elsewhere"), Workspace.find())[1] == Path("elsewhere")


# -- runs ------------------------------------------------------------------------------------------
def test_run_directories_are_numbered(ws_dir):
    ws = Workspace(ws_dir)
    assert train_out("dmt", None, False, ws) == (ws_dir / "runs" / "dmt", True)
    assert train_out("dmt", None, False, ws)[0] == ws_dir / "runs" / "dmt2"
    (ws_dir / "runs" / "dmt3").mkdir()  # taken by hand: skipped
    assert train_out("dmt", None, False, ws)[0] == ws_dir / "runs" / "dmt4"
    assert train_out("slavc", None, False, ws)[0] == ws_dir / "runs" / "slavc"
    assert train_out("dmt", Path("mine"), False, ws) == (Path("mine"), False)
    with pytest.raises(AvslError, match="--resume needs a run"):
        train_out("dmt", None, True, ws)
    ws.record(run=ws_dir / "runs" / "dmt2")
    assert train_out("dmt", None, True, Workspace.find()) == (ws_dir / "runs" / "dmt2", False)


def test_run_numbering_refused_under_torchrun(ws_dir, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(AvslError, match="under torchrun pass --out"):
        train_out("dmt", None, False, Workspace(ws_dir))
    assert train_out("dmt", Path("runs/x"), False, Workspace(ws_dir)) == (Path("runs/x"), False)
    assert not (ws_dir / "runs").exists()


def test_latest_run_that_was_deleted_is_an_error(ws_dir):
    Workspace(ws_dir).record(run=ws_dir / "runs" / "gone")
    with pytest.raises(WorkspaceError, match=r"avslkit.yaml:\d+: the latest run runs/gone no longer exists"):
        Workspace.find().latest_run()


# -- --labeled and --val-labeled ------------------------------------------------------------------
@pytest.mark.parametrize("spec, kind, value", [("4k", "count", 4000), ("4000", "count", 4000), ("2K", "count", 2000),
                                               ("0.03", "fraction", 0.03), ("all", "all", None)])
def test_labeled_spec_forms(spec, kind, value):
    parsed = parse_labeled_spec(spec)
    assert parsed.kind == kind and (parsed.count if kind == "count" else parsed.fraction if kind == "fraction" else None) == value


def test_labeled_file_and_too_many_labels_give_both_numbers(tmp_path):
    ids = touch(tmp_path / "labels.txt", "a\nb\n")
    assert parse_labeled_spec(str(ids)).path == ids
    store_ids = [f"c{i:03d}" for i in range(200)]
    with pytest.raises(AvslError) as err:
        split_labeled(store_ids, store_ids[:100], "4k", val_labeled="auto")
    msg = str(err.value)
    assert "4000 labelled" in msg and "only 90 annotated clips are left" in msg and "holding out 10" in msg


def test_unparseable_labeled_fails_before_a_run_directory_exists(ws_dir):
    res = runner.invoke(app, ["train", "dmt", "--labeled", "4x"])
    assert res.exit_code == 1 and "cannot read labelled spec '4x'" in res.output
    assert not (ws_dir / "runs").exists() or not any((ws_dir / "runs").iterdir())


@pytest.mark.parametrize("value, n, expected", [("auto", 10_000, 500), ("auto", 4250, 425), ("auto", 77, 8),
                                                ("auto", 3, 1), ("auto", 0, 0), (None, 60, 6), (12, 60, 12), ("7", 60, 7)])
def test_val_labeled_auto(value, n, expected):
    assert resolve_val_labeled(value, n) == expected


def test_val_labeled_auto_fits_a_small_store():
    ids = [f"c{i:03d}" for i in range(80)]
    split = split_labeled(ids, ids, "64", val_labeled="auto")
    assert len(split.val) == 8 and len(split.labeled) == 64
    with pytest.raises(AvslError, match="val_labeled must be a count"):
        resolve_val_labeled("lots", 10)


# -- split discovery ---------------------------------------------------------------------------------
NAMES = settings().split_files


def _videos(folder: Path, ids: list[str]) -> None:
    for i in ids:
        touch(folder / "videos" / f"{i}.mp4")


def test_plan_synth_layout(tmp_path):
    toy = tmp_path / "toy"
    _videos(toy, ["a", "b", "c", "d", "e"])
    touch(toy / "train.txt", "a\nb\nc\nzz\n")
    touch(toy / "test_videos.txt", "d\ne\n")
    touch(toy / "test.csv", "d\n")
    touch(toy / "annotations.json", "[]")
    touch(toy / "timestamps.csv", "id,time\n")
    plan = plan_stores(toy, tmp_path / "data", NAMES)
    assert {r: p.name for r, p in plan.found.items()} == {
        "train": "train.txt", "test": "test_videos.txt", "test_list": "test.csv", "annotations": "annotations.json",
        "timestamps": "timestamps.csv"}
    train, test = plan.jobs
    assert (train.role, train.out.name, [p.stem for p in train.inputs], train.missing) == ("train", "train.h5", ["a", "b", "c"], ["zz"])
    assert (test.role, test.out.name, [p.stem for p in test.inputs]) == ("test", "test.h5", ["d", "e"])


def test_plan_one_list_file(tmp_path):
    toy = tmp_path / "toy"
    _videos(toy, ["a", "b", "c"])
    touch(toy / "annotations.json", "[]")
    plan = plan_stores(touch(toy / "train.txt", "a\nb\nq\n"), tmp_path / "data", NAMES)
    (job,) = plan.jobs
    assert (job.role, job.out.name, [p.stem for p in job.inputs], job.missing) == ("train", "train.h5", ["a", "b"], ["q"])
    assert plan.found["annotations"].name == "annotations.json"
    (job,) = plan_stores(touch(toy / "test_videos.txt", "c\n"), tmp_path / "data", NAMES).jobs
    assert (job.role, job.out.name) == ("test", "test.h5")
    with pytest.raises(AvslError, match="none of its 1 clip"):
        plan_stores(touch(toy / "other.txt", "zz\n"), tmp_path / "data", NAMES)


def test_plan_published_test_list_only_and_no_split_files(tmp_path):
    vids = tmp_path / "vggsound"
    _videos(vids, ["a", "b", "c"])
    touch(tmp_path / "vggss_test.csv", "c\n")  # in the workspace folder, not beside the videos
    touch(tmp_path / "vggss.json", "[]")
    plan = plan_stores(vids, tmp_path / "data", NAMES, extra_folders=[tmp_path])
    assert plan.found["test_list"].name == "vggss_test.csv" and plan.found["annotations"].name == "vggss.json"
    assert [[p.stem for p in j.inputs] for j in plan.jobs] == [["a", "b"], ["c"]]
    plain = tmp_path / "clips"
    _videos(plain, ["x", "y"])
    plan = plan_stores(plain, tmp_path / "data", NAMES)
    assert [(j.role, j.out.name, len(j.inputs)) for j in plan.jobs] == [("train", "clips.h5", 2)]


def test_plan_errors(tmp_path):
    with pytest.raises(AvslError, match="videos folder not found"):
        plan_stores(tmp_path / "nope", tmp_path / "data", NAMES)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AvslError, match="no videos found in"):
        plan_stores(tmp_path / "empty", tmp_path / "data", NAMES)
    _videos(tmp_path / "both", ["a", "b"])
    touch(tmp_path / "both" / "train.txt", "a\nb\n")
    touch(tmp_path / "both" / "test_videos.txt", "b\n")
    with pytest.raises(AvslError, match="share 1 clip"):
        plan_stores(tmp_path / "both", tmp_path / "data", NAMES)


def test_preprocess_short_form_errors_are_one_line(ws_dir):
    for args, needle in ((["preprocess", "videos/"], "videos folder not found: videos"),
                         (["preprocess", "empty/"], "no videos found in empty")):
        (ws_dir / "empty").mkdir(exist_ok=True)
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and needle in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not (ws_dir / "avslkit.yaml").exists() and not (ws_dir / "data").exists()


def test_status_table(ws_dir):
    res = runner.invoke(app, ["status"])
    assert res.exit_code == 0 and "no avslkit.yaml" in res.output and "avslkit preprocess VIDEOS/" in res.output
    metrics = touch(ws_dir / "runs" / "dmt" / "eval" / "metrics.json", json.dumps({"locacc": 0.5, "auc": 0.25, "ap": 0.1}))
    touch(ws_dir / "runs" / "dmt" / "checkpoints.json", json.dumps({"last": {"epoch": 2, "global_step": 7}, "best": None}))
    Workspace(ws_dir).record({"last_eval": metrics, "annotations": ws_dir / "gone.json"}, run=ws_dir / "runs" / "dmt")
    res = runner.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "LocAcc 50.00, AUC 25.00" in res.output and "last.pt: epoch 2, step 7" in res.output
    assert "missing" in res.output and "gone.json" in res.output


def test_localize_and_demo_default_to_the_latest_run(ws_dir):
    from avslkit.workflow import run_default

    for args in (["localize", "--image", "x.png", "--audio", "x.wav"], ["demo", "--port", "0"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and "no run to load: pass --ckpt RUN_DIR" in res.output, res.output
    (ws_dir / "runs" / "slavc").mkdir(parents=True)
    Workspace(ws_dir).record(run=ws_dir / "runs" / "slavc")
    assert run_default(None) == Path("runs/slavc")
    assert run_default(Path("mine.pt")) == Path("mine.pt")


def test_val_labeled_spec_accepts_auto_and_counts():
    from avslkit.config import ConfigError
    from avslkit.config_spec import check_config

    for ok in ("auto", 0, 500):
        check_config({"data": {"val_labeled": ok}}, "train")
    with pytest.raises(ConfigError, match=r"data.val_labeled=lots is not an integer: expected an integer >= 0 or auto"):
        check_config({"data": {"val_labeled": "lots"}}, "train")
    with pytest.raises(ConfigError, match="out of range"):
        check_config({"data": {"val_labeled": -1}}, "train")


def test_finished_work_in_a_damaged_workspace_is_kept_with_a_warning(ws_dir, caplog):
    text = "version: 1\nruns: [runs/a\n"
    touch(ws_dir / "avslkit.yaml", text)
    ws = Workspace.find()
    assert ws.record_result({"last_eval": ws_dir / "m.json"}) is False  # a warning, the command still succeeds
    assert (ws_dir / "avslkit.yaml").read_text() == text
    res = runner.invoke(app, ["preprocess", "toy/"])  # the short form checks the file before any work
    assert res.exit_code == 1 and "avslkit.yaml:3: not valid YAML" in res.output
