"""`pg-ext-memcheck validate-inputs`: the GitHub Action's first step after installing the reporter.

Reads the action's inputs from MC_<INPUT> environment variables (action.yml passes each input through `env:`),
validates them all (reporter/inputs.py), and writes the plan the other steps follow to $GITHUB_OUTPUT. Every
mistake is an `::error::` naming the input; then exit 2, nothing else having run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping

from reporter import event as events
from reporter import ghoutputs, inputs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate-inputs",
        help="(GitHub Action) validate the action's inputs and write the plan of its steps to $GITHUB_OUTPUT",
        description="For action.yml: read the inputs from the environment (MC_POSTGRES_VERSION, MC_CONFIG, "
        "MC_COMPARE, ...: MC_ and the input's name in capitals with '_' for '-'; MC_HAS_TOKEN says whether "
        "github-token is set), check every one, and write what the action's steps do to $GITHUB_OUTPUT: "
        + ", ".join(sorted(k.replace("_", "-") for k in inputs.Plan.__dataclass_fields__)) + ". Each problem is "
        "an ::error:: line naming the input; exit status 2 when there is any.",
    )
    p.set_defaults(func=main)


def run(env: Mapping[str, str], out: object = None) -> int:
    out = out or sys.stdout
    values = {name: env.get(inputs.env_name(name), "") for name in inputs.INPUTS}
    values["has-token"] = env.get("MC_HAS_TOKEN", "")
    event = events.load_event(env.get("GITHUB_EVENT_PATH"))
    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
    try:
        plan = inputs.plan(values, env, event, workspace)
    except inputs.Problems as exc:
        where = ghoutputs.workflow_file(env)  # inside GitHub every annotation has a file: the workflow's
        for message in exc.messages:
            print(ghoutputs.command("error", message, "pg-ext-memcheck invalid input", where), file=out)
        print(ghoutputs.command("error", "invalid inputs, see the messages above; nothing was run",
                                "pg-ext-memcheck", where), file=out)
        return 2
    if not env.get("GITHUB_OUTPUT"):
        print("pg-ext-memcheck: validate-inputs needs GITHUB_OUTPUT (set by the GitHub runner)", file=sys.stderr)
        return 2
    # The private clusters' parent (the server may run as another user) and this leg's results.
    tmp = Path(plan.root) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o1777)
    if plan.results_dir:
        Path(plan.results_dir).mkdir(parents=True, exist_ok=True)
    ghoutputs.write_outputs(Path(env["GITHUB_OUTPUT"]), plan.outputs())
    what = plan.config or f"the regression suite of {plan.extension}"
    compared = f"compared with {plan.compare}" if plan.compare else f"no comparison ({plan.compare_note})"
    print(f"mode={values['mode']} leg={plan.leg} results={plan.results_dir or 'none (publish only)'}", file=out)
    if plan.run == "true":
        print(f"workloads: {what}; {compared}", file=out)
    return 0


def main(args: argparse.Namespace) -> int:
    return run(os.environ)


if __name__ == "__main__":
    # action.yml runs this file with the runner's Python before the reporter is installed (PYTHONPATH is the
    # action's directory): standard library only, and its own error boundary.
    try:
        sys.exit(run(os.environ))
    except Exception as exc:  # noqa: BLE001 - the boundary: one line and status 2, never a traceback
        print(f"pg-ext-memcheck: internal error in validate-inputs: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
