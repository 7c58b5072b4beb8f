"""Every `costsim …` command the README shows runs (in-process, with the README's placeholders filled in), and
a command added to the README without being run here fails the coverage test."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from costsim.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SMALL = "scenarios/gpt3-175b-h100.yaml"          # stands for S.yaml / SCENARIO.yaml

# README text → the invocation that runs it here (placeholders filled, optional parts as shown in brackets)
RUN = {
    "costsim estimate SCENARIO.yaml": f"estimate {SMALL}",
    "costsim estimate S.yaml --format json": f"estimate {SMALL} --format json",
    "costsim estimate S.yaml --simulate [--seed 1 --replicates 16]": f"estimate {SMALL} --simulate --seed 1 "
                                                                     "--replicates 4",
    "costsim estimate scenarios/deepseek-v3.yaml": "estimate scenarios/deepseek-v3.yaml",
    "costsim estimate scenarios/deepseek-v3.yaml --set cluster.gpu=h100-sxm --set parallelism.zero_stage=2":
        "estimate scenarios/deepseek-v3.yaml --set cluster.gpu=h100-sxm --set parallelism.zero_stage=2",
    "costsim estimate scenarios/deepseek-v3.yaml --simulate --seed 1":
        "estimate scenarios/deepseek-v3.yaml --simulate --seed 1 --replicates 2",
    "costsim estimate scenarios/deepseek-r1.yaml": "estimate scenarios/deepseek-r1.yaml",
    "costsim estimate scenarios/deepseek-v3.yaml --range 'phases.0.tokens=[13e12, 16e12]'":
        "estimate scenarios/deepseek-v3.yaml --range 'phases.0.tokens=[13e12, 16e12]'",
    "costsim estimate scenarios/deepseek-v3-serving.yaml": "estimate scenarios/deepseek-v3-serving.yaml",
    "costsim estimate scenarios/distillation.yaml": "estimate scenarios/distillation.yaml",
    "costsim profiles": "profiles",
    "costsim profiles [--show h800-sxm]": "profiles --show h800-sxm",
    "costsim schema": "schema",
    "costsim timeline S.yaml -o timeline.html": f"timeline {SMALL} -o {{tmp}}/timeline.html",
    "costsim timeline scenarios/deepseek-v3.yaml -o timeline.html":
        "timeline scenarios/deepseek-v3.yaml -o {tmp}/timeline.html",
    "costsim report S.yaml -o report.html [--set KEY=VALUE …]":
        f"report {SMALL} -o {{tmp}}/report.html --set phases.0.tokens=1e12",
    "costsim validate": "validate --format json",
    "costsim validate [--fit]": "validate",
    "costsim search S.yaml": f"search {SMALL} --space {{tmp}}/space.yaml",
    "costsim search S.yaml [--objective cost\\|time\\|pareto] [--top N] [--space wide\\|PATH] "
    "[--format table\\|json\\|csv] [-o pareto.html] [--executor dask]":
        f"search {SMALL} --objective pareto --top 3 --space {{tmp}}/space.yaml --format json -o {{tmp}}/p.html",
    "costsim search scenarios/gpt3-175b-h100.yaml": f"search {SMALL} --space {{tmp}}/space.yaml --format csv",
    "costsim search scenarios/deepseek-v3-serving.yaml": "search scenarios/deepseek-v3-serving.yaml --top 3",
    "costsim search scenarios/distillation.yaml --phase generate-800k-samples":
        "search scenarios/distillation.yaml --phase generate-800k-samples --top 3",
}
# shown in prose or as a family, not as a command to run as written (reason beside each)
SKIP = {
    "costsim calibrate": "the command family; its subcommands are run by tests/test_calibrate_cli.py and .ci/run",
    "costsim calibrate fit": "needs a results file: tests/test_calibrate_cli.py and .ci/run run it",
    "costsim calibrate run \\| fit \\| compare": "the three subcommands, run by tests/test_calibrate_cli.py",
    "costsim estimate --set …": "prose: the search's one cost path (tests/test_search.py compares them)",
    "costsim search": "prose: the command's name",
    "costsim validate --fit": "refits (minutes); tests/test_fit.py checks the committed fit",
    "costsim validate\n--fit": "the same, wrapped across a line",
}


def readme_commands() -> set[str]:
    return {m.strip() for m in re.findall(r"`(costsim [^`]+)`", README)}


def test_every_readme_command_is_run_or_explained():
    missing = readme_commands() - set(RUN) - set(SKIP)
    assert not missing, f"README commands neither run nor explained here: {sorted(missing)}"


@pytest.mark.parametrize("shown", sorted(RUN))
def test_readme_command_runs(shown, tmp_path, monkeypatch):
    if shown not in readme_commands():
        pytest.skip("no longer in the README")
    monkeypatch.chdir(ROOT)
    (tmp_path / "space.yaml").write_text("tp: [4, 8]\npp: 8\nmicro_batch_size: 1\nzero_stage: 1\n")
    args = shlex.split(RUN[shown].format(tmp=tmp_path))
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, f"{shown}\n{res.output[-2000:]}"
