"""Every user mistake gets one clear line (issue 15): the CLI run as a user runs it.

Each test starts ``python -m hsrpose.cli ...`` in a subprocess (stderr a pipe, not a
terminal) and checks the exit code and stderr: a user error exits 1 (2 for argparse
usage errors) with one ``hsrpose VERB: error: ...`` line naming the thing and no
traceback; an internal error exits 70 with the traceback and a bug-report line.
Mistakes are caught before any work starts, so no test trains or evaluates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hsrpose
from hsrpose.cli import EXIT_BROKEN_PIPE, EXIT_BUG

from conftest import COCO_MINI_ANN, COCO_MINI_IMAGES

SRC = str(Path(hsrpose.__file__).resolve().parents[1])
TINY = "hsrnet_tiny_128x96"
HAS_PROC = sys.platform.startswith("linux") and Path("/proc/self").is_dir()


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path | None = None, prelude: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m hsrpose.cli ARGS`` or, with ``prelude`` (Python run first, e.g. to hide a
    package as if it were not installed), ``python -c "PRELUDE; main()" ARGS``."""
    if prelude:
        cmd = [sys.executable, "-c", f"import sys\n{prelude}\nfrom hsrpose.cli import main\nsys.exit(main())", *args]
    else:
        cmd = [sys.executable, "-m", "hsrpose.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=300)


def error_line(res: subprocess.CompletedProcess[str], verb: str, code: int = 1) -> str:
    """Assert a user error: exit ``code``, no traceback, exactly one error line; return it."""
    assert res.returncode == code, f"exit {res.returncode}\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith(f"hsrpose {verb}: error: ")]
    assert len(lines) == 1, res.stderr
    if code == 1:  # nothing else on stderr (argparse adds its usage lines for code 2)
        assert res.stderr.strip() == lines[0], res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hsrpose weights of the tiny preset (random init)."""
    from hsrpose.data.keypoints import COCO_KEYPOINTS
    from hsrpose.models import create_model
    from hsrpose.models.weights import save_pose_model

    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    save_pose_model(create_model(TINY), path, TINY, COCO_KEYPOINTS)
    return path


@pytest.fixture()
def a_file(tmp_path: Path) -> Path:
    p = tmp_path / "some_file"
    p.write_text("not a folder\n")
    return p


# ---- 1. --out names an existing file


def test_predict_out_is_a_file(coco_mini: Path, weights: Path, a_file: Path) -> None:
    image = sorted((coco_mini / COCO_MINI_IMAGES).iterdir())[0]
    line = error_line(run_cli("predict", str(image), "--weights", str(weights), "--out", str(a_file)), "predict")
    assert f"--out {a_file}" in line and "existing file" in line


def test_train_out_is_a_file(coco_mini: Path, a_file: Path) -> None:
    res = run_cli("train", TINY, "--data-root", str(coco_mini), "--out", str(a_file))
    line = error_line(res, "train")
    assert f"--out {a_file}" in line and "existing file" in line


# ---- 2. --out cannot be written


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc as a place nothing can be created in")
def test_predict_out_not_writable(coco_mini: Path, weights: Path) -> None:
    image = sorted((coco_mini / COCO_MINI_IMAGES).iterdir())[0]
    line = error_line(run_cli("predict", str(image), "--weights", str(weights), "--out", "/proc/hsrpose-out"), "predict")
    assert "--out /proc/hsrpose-out" in line and "cannot create" in line


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc as a place nothing can be created in")
def test_eval_out_not_writable(coco_mini: Path, weights: Path) -> None:
    res = run_cli(
        "eval", TINY, "--weights", str(weights), "--ann", str(coco_mini / COCO_MINI_ANN),
        "--images", str(coco_mini / COCO_MINI_IMAGES), "--gt-boxes", "--out", "/proc/hsrpose.json",
    )  # fmt: skip
    line = error_line(res, "eval")
    assert "--out /proc/hsrpose.json" in line and "cannot write" in line


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc as a place nothing can be created in")
def test_export_out_not_writable(weights: Path) -> None:
    line = error_line(run_cli("export", "--weights", str(weights), "--out", "/proc/hsrpose.onnx"), "export")
    assert "--out /proc/hsrpose.onnx" in line and "cannot write" in line


def test_export_out_under_a_file(weights: Path, a_file: Path) -> None:
    """The portable form of an unwritable place: a folder that would have to be made inside a file."""
    line = error_line(run_cli("export", "--weights", str(weights), "--out", str(a_file / "m.onnx")), "export")
    assert f"{a_file} is a file, not a folder" in line


# ---- 3. eval --out names an existing folder: refused before the evaluation


def test_eval_out_is_a_folder(coco_mini: Path, weights: Path, tmp_path: Path) -> None:
    res = run_cli(
        "eval", TINY, "--weights", str(weights), "--ann", str(coco_mini / COCO_MINI_ANN),
        "--images", str(coco_mini / COCO_MINI_IMAGES), "--gt-boxes", "--out", str(tmp_path),
    )  # fmt: skip
    line = error_line(res, "eval")
    assert f"--out {tmp_path}" in line and "is a folder" in line


# ---- 4. numeric settings out of range name the key


def test_train_batch_size_zero(coco_mini: Path, tmp_path: Path) -> None:
    res = run_cli("train", TINY, "--data-root", str(coco_mini), "--out", str(tmp_path / "run"), "optim.batch_size=0")
    line = error_line(res, "train")
    assert "optim.batch_size=0" in line and ">= 1" in line
    assert not (tmp_path / "run" / "config.yaml").exists()  # refused before the run started


def test_train_probability_out_of_range(coco_mini: Path, tmp_path: Path) -> None:
    res = run_cli("train", TINY, "--data-root", str(coco_mini), "--out", str(tmp_path / "run"), "augment.flip_prob=1.5")
    assert "augment.flip_prob=1.5" in error_line(res, "train")


def test_eval_override_after_options_is_range_checked(coco_mini: Path, weights: Path, tmp_path: Path) -> None:
    """Found in the sweep: KEY=VALUE after the options (as in eval's own examples) was an argparse error."""
    res = run_cli(
        "eval", TINY, "--weights", str(weights), "--ann", str(coco_mini / COCO_MINI_ANN),
        "--images", str(coco_mini / COCO_MINI_IMAGES), "--gt-boxes", "--out", str(tmp_path / "r.json"), "oks_nms_thr=2",
    )  # fmt: skip
    assert "oks_nms_thr=2.0 is out of range" in error_line(res, "eval")


def test_predict_batch_size_zero_is_a_usage_error(coco_mini: Path, weights: Path, tmp_path: Path) -> None:
    image = sorted((coco_mini / COCO_MINI_IMAGES).iterdir())[0]
    res = run_cli("predict", str(image), "--weights", str(weights), "--out", str(tmp_path), "--batch-size", "0")
    assert "argument --batch-size: must be >= 1, got 0" in error_line(res, "predict", code=2)


# ---- 5. a missing optional package names its extra


def test_export_without_onnx(weights: Path, tmp_path: Path) -> None:
    res = run_cli("export", "--weights", str(weights), "--out", str(tmp_path / "m.onnx"), prelude="sys.modules['onnx'] = None")
    line = error_line(res, "export")
    assert "'onnx'" in line and 'pip install -e ".[export]"' in line
    assert not (tmp_path / "m.onnx").exists()


def test_export_without_onnxruntime_names_no_verify(weights: Path, tmp_path: Path) -> None:
    res = run_cli(
        "export", "--weights", str(weights), "--out", str(tmp_path / "m.onnx"), prelude="sys.modules['onnxruntime'] = None"
    )
    line = error_line(res, "export")
    assert "'onnxruntime'" in line and 'pip install -e ".[export]"' in line and "--no-verify" in line


# ---- 6, 7, 8: one predict run on a folder holding photo.jpg and photo.jpeg, --ann naming neither


@pytest.fixture(scope="module")
def predict_run(coco_mini: Path, weights: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("predict")
    folder = root / "in"
    folder.mkdir()
    images = sorted((coco_mini / COCO_MINI_IMAGES).iterdir())
    shutil.copy(images[0], folder / "photo.jpg")
    shutil.copy(images[1], folder / "photo.jpeg")
    out = root / "out"
    res = run_cli(
        "predict", str(folder), "--weights", str(weights), "--out", str(out), "--ann", str(coco_mini / COCO_MINI_ANN),
        HSRPOSE_PROGRESS_INTERVAL="0",
    )  # fmt: skip
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    return res, out


def test_predict_says_when_ann_names_none_of_the_images(predict_run, coco_mini: Path) -> None:  # type: ignore[no-untyped-def]
    res, _ = predict_run
    warnings = [ln for ln in res.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "names none of the 2 input images" in warnings[0], res.stderr
    assert str(coco_mini / COCO_MINI_ANN) in warnings[0]


def test_predict_keeps_one_drawing_per_input(predict_run) -> None:  # type: ignore[no-untyped-def]
    import cv2

    _, out = predict_run
    assert sorted(p.name for p in (out / "vis").iterdir()) == ["photo.jpeg", "photo.jpg"]
    shapes = {cv2.imread(str(p)).shape for p in (out / "vis").iterdir()}
    assert len(shapes) == 2  # two different source images, two different drawings
    assert len(json.loads((out / "images.json").read_text())) == 2


def test_predict_progress_lines_without_a_terminal(predict_run) -> None:  # type: ignore[no-untyped-def]
    res, _ = predict_run
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("predict: ")]
    assert [ln.split(" img")[0] for ln in lines] == ["predict: 1/2", "predict: 2/2"], res.stderr
    assert "\r" not in res.stderr  # plain lines, not a carriage-return bar


# ---- 9. a broken checkpoint gets a whole-sentence message


def test_truncated_checkpoint_message_is_whole_sentences(weights: Path, tmp_path: Path, coco_mini: Path) -> None:
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(weights.read_bytes()[:100_000])
    image = sorted((coco_mini / COCO_MINI_IMAGES).iterdir())[0]
    line = error_line(run_cli("predict", str(image), "--weights", str(bad), "--out", str(tmp_path / "o")), "predict")
    assert f"{bad}: not a readable checkpoint" in line and "truncated or damaged" in line
    detail = line[line.index("(") + 1 : line.rindex(")")]
    assert detail.endswith((".", "!", "?")) or len(detail) < 200, line  # never cut mid-sentence


def test_first_line_keeps_whole_sentences() -> None:
    from hsrpose.models.checkpoint_io import _first_line

    long = "First part: a reason. " + "Second sentence that goes on " * 10 + "and on."
    assert _first_line(long) == "First part: a reason."
    assert _first_line("short message\nsecond line") == "short message"


# ---- 10. output into a closed pipe ends quietly


def test_models_into_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hsrpose.cli", "models", "--json", TINY], env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away at once, as `head` does after its lines
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == EXIT_BROKEN_PIPE
    assert err == ""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_on_stdout_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "hsrpose.cli", "models", "--json", TINY], env=_env(), stdout=full,
                             stderr=subprocess.PIPE, text=True, timeout=300)  # fmt: skip
    assert "No space left on device" in error_line(res, "models")


# ---- the rule: anything else is a bug, shown with its traceback and a request for a report


def test_internal_error_prints_traceback_and_asks_for_a_report() -> None:
    res = run_cli("models", prelude="import hsrpose.commands.models as m\nm.run = lambda args: 1 / 0")
    assert res.returncode == EXIT_BUG
    assert "Traceback" in res.stderr and "ZeroDivisionError" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("hsrpose models: internal error: this is a bug in hsrpose")


# ---- sweep of the other verbs and options


def test_predict_unknown_device(coco_mini: Path, weights: Path, tmp_path: Path) -> None:
    image = sorted((coco_mini / COCO_MINI_IMAGES).iterdir())[0]
    res = run_cli("predict", str(image), "--weights", str(weights), "--out", str(tmp_path), "--device", "gpu0")
    assert "--device 'gpu0' is not a device" in error_line(res, "predict")


def test_train_unknown_device(coco_mini: Path, tmp_path: Path) -> None:
    res = run_cli("train", TINY, "--data-root", str(coco_mini), "--out", str(tmp_path / "run"), "device=gpu")
    assert "device 'gpu' is not a device" in error_line(res, "train")


def test_browse_out_is_a_file(coco_mini: Path, a_file: Path) -> None:
    res = run_cli("browse", "--ann", str(coco_mini / COCO_MINI_ANN), "--images", str(coco_mini / COCO_MINI_IMAGES),
                  "--out", str(a_file), "--num", "1")  # fmt: skip
    assert f"--out {a_file}: this is an existing file" in error_line(res, "browse")


def test_browse_sigma_zero(coco_mini: Path, tmp_path: Path) -> None:
    res = run_cli("browse", "--ann", str(coco_mini / COCO_MINI_ANN), "--images", str(coco_mini / COCO_MINI_IMAGES),
                  "--out", str(tmp_path), "--sigma", "0")  # fmt: skip
    assert "argument --sigma: must be >= 0.001, got 0" in error_line(res, "browse", code=2)


def test_synth_out_under_a_file(a_file: Path) -> None:
    res = run_cli("synth", "--out", str(a_file / "data"), "--images", "1")
    assert f"{a_file} is a file, not a folder" in error_line(res, "synth")


def test_synth_max_people_zero(tmp_path: Path) -> None:
    res = run_cli("synth", "--out", str(tmp_path), "--images", "1", "--max-people", "0")
    assert "argument --max-people: must be >= 1 and <= 254, got 0" in error_line(res, "synth", code=2)


def test_demo_unknown_preset_fails_before_making_data(tmp_path: Path) -> None:
    res = run_cli("demo", "--quick", "--out", str(tmp_path / "demo"), "--preset", "hsrnet_tiyn")
    assert "hsrnet_tiyn" in error_line(res, "demo")
    assert not (tmp_path / "demo" / "data").exists()


def test_demo_unknown_device_fails_before_making_data(tmp_path: Path) -> None:
    res = run_cli("demo", "--quick", "--out", str(tmp_path / "demo"), "--device", "nodev")
    assert "--device 'nodev' is not a device" in error_line(res, "demo")
    assert not (tmp_path / "demo" / "data").exists()


def test_demo_negative_lr(tmp_path: Path) -> None:
    res = run_cli("demo", "--quick", "--out", str(tmp_path / "demo"), "--lr", "-1")
    assert "--lr must be > 0" in error_line(res, "demo")


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc as a place nothing can be created in")
def test_demo_out_not_writable() -> None:
    res = run_cli("demo", "--quick", "--out", "/proc/hsrpose-demo")
    assert "--out /proc/hsrpose-demo: cannot create" in error_line(res, "demo")


def test_score_negative_digits(coco_mini: Path, tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    results.write_text("[]")
    res = run_cli("score", "--gt", str(coco_mini / COCO_MINI_ANN), "--results", str(results), "--digits", "-3")
    assert "argument --digits: must be >= 0 and <= 17, got -3" in error_line(res, "score", code=2)


def test_train_missing_config_file(coco_mini: Path, tmp_path: Path) -> None:
    """Found in the sweep: a --config that does not exist was a FileNotFoundError traceback."""
    missing = tmp_path / "nope.yaml"
    res = run_cli("train", TINY, "--config", str(missing), "--data-root", str(coco_mini), "--out", str(tmp_path / "run"))
    assert f"{missing}: cannot read the config file" in error_line(res, "train")


def test_predict_missing_ann_file(coco_mini: Path, weights: Path, tmp_path: Path) -> None:
    image = sorted((coco_mini / COCO_MINI_IMAGES).iterdir())[0]
    missing = tmp_path / "nope.json"
    res = run_cli("predict", str(image), "--weights", str(weights), "--out", str(tmp_path / "o"), "--ann", str(missing))
    assert f"{missing}: file not found" in error_line(res, "predict")
