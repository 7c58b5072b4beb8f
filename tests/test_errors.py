"""Bad input: one line on stderr naming the field or file, exit code 2, never a traceback."""
from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from costsim.cli import app

ROOT = Path(__file__).resolve().parent.parent
V3 = ROOT / "scenarios" / "deepseek-v3.yaml"


def make_runner() -> CliRunner:
    """stdout and stderr apart (click < 8.2 needs mix_stderr=False; later ones always split)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


runner = make_runner()


def scenario(tmp_path: Path, edit=None, text: str | None = None) -> str:
    """deepseek-v3.yaml, edited, written to tmp_path."""
    path = tmp_path / "bad.yaml"
    if text is None:
        raw = yaml.safe_load(V3.read_text())
        if edit:
            edit(raw)
        text = yaml.safe_dump(raw, sort_keys=False)
    path.write_text(text)
    return str(path)


def user_error(*args: str) -> str:
    """Run the CLI, check it failed the user-error way, return the one stderr line."""
    result = runner.invoke(app, list(args), env={"COLUMNS": "80"})
    err = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.stdout, err)
    assert "Traceback" not in err and "Traceback" not in result.stdout
    assert result.stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and len(lines[0]) > len("error: ")
    return lines[0]


def _set(section: str, key: str, value):
    return lambda raw: raw.setdefault(section, {}).__setitem__(key, value)


def test_unknown_key(tmp_path):
    msg = user_error("estimate", scenario(tmp_path, _set("parallelism", "tpp", 2)))
    assert "parallelism.tpp" in msg and "unknown key" in msg


def test_wrong_type(tmp_path):
    msg = user_error("estimate", scenario(tmp_path, _set("cluster", "num_gpus", "many")))
    assert "cluster.num_gpus" in msg


def test_unknown_gpu(tmp_path):
    msg = user_error("estimate", scenario(tmp_path, _set("cluster", "gpu", "h900")))
    assert "cluster.gpu" in msg and "h900" in msg


def test_unknown_model(tmp_path):
    msg = user_error("estimate", scenario(tmp_path, lambda raw: raw.__setitem__("model", "gpt5")))
    assert "model" in msg and "gpt5" in msg


def test_missing_scenario_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    msg = user_error("estimate", str(missing))
    assert msg == f"error: {missing}: file not found"


def test_missing_hf_config(tmp_path):
    msg = user_error("estimate", scenario(tmp_path, lambda raw: raw.__setitem__(
        "model", {"hf_config": "missing/config.json"})))
    assert "model.hf_config" in msg and "not found" in msg


def test_tp_not_dividing_heads():
    # 1536 GPUs so that tp·pp = 48 divides the cluster and the heads check is the one that fails
    msg = user_error("estimate", str(V3), "--set", "cluster.num_gpus=1536", "--set", "parallelism.tp=3")
    assert "parallelism.tp=3" in msg and "num_attention_heads" in msg


def test_tp_not_dividing_gpus():
    msg = user_error("estimate", str(V3), "--set", "parallelism.tp=3")
    assert "parallelism" in msg or "cluster.num_gpus" in msg


def test_ep_not_dividing_experts():
    msg = user_error("estimate", str(V3), "--set", "parallelism.ep=7")
    assert "parallelism.ep=7" in msg and "n_routed_experts" in msg


def test_plan_does_not_fit_in_memory():
    msg = user_error("estimate", str(V3), "--set", "parallelism.recompute=none")
    assert "memory" in msg and "GiB" in msg


def test_bad_set_without_equals():
    msg = user_error("estimate", str(V3), "--set", "parallelism.pp")
    assert "--set parallelism.pp" in msg and "key=value" in msg


def test_bad_phase_override():
    msg = user_error("estimate", str(V3), "--set", "phases.0.parallelism.schedule=gpipe")
    assert "phases[0].parallelism.schedule" in msg


def test_invalid_yaml(tmp_path):
    path = scenario(tmp_path, text="name: x\nmodel: [deepseek-v3\n")
    msg = user_error("estimate", path)
    assert path in msg and "YAML" in msg


def test_brackets_in_messages_survive(tmp_path):
    msg = user_error("estimate", scenario(tmp_path, _set("parallelism", "[bold]x", 1)))
    assert "parallelism.[bold]x" in msg


def test_json_format_errors_the_same_way():
    msg = user_error("estimate", str(V3), "--format", "json", "--set", "parallelism.ep=7")
    assert "parallelism.ep=7" in msg


def test_unknown_profile_to_show():
    msg = user_error("profiles", "--show", "h900")
    assert "h900" in msg


def test_bugs_are_not_swallowed(monkeypatch):
    import costsim.estimate

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(costsim.estimate, "estimate", broken)
    result = runner.invoke(app, ["estimate", str(V3), "--format", "json"])
    assert result.exit_code != 2
    assert isinstance(result.exception, RuntimeError)
