"""``chargeback demo``: the local demo (needs the demo extra and a checkout)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console


@click.command()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where exports, the ledger and logs go.",
)
@click.option("--hours", type=click.IntRange(2, 24 * 62), default=72, show_default=True,
              help="Hours of simulated traffic.")  # fmt: skip
@click.option("--users", type=click.IntRange(1, 10_000), default=60, show_default=True,
              help="Simulated users.")  # fmt: skip
@click.option(
    "--no-wait",
    is_flag=True,
    help="Stop after the check instead of waiting for Ctrl-C (the default without a terminal).",
)
def demo(output: Path, hours: int, users: int, no_wait: bool) -> None:
    """Run the local demo: control plane, Prometheus with simulated traffic, operator, report.

    Needs the demo extra (``pip install 'chargeback-operator[demo]'``) and a checkout of the
    repository (its CRDs and samples) with ``make tools`` run once.
    """
    try:
        # The test platform is not part of the operator: loaded only when the demo runs.
        from chargeback.testing.demo import DemoOptions, run_demo  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        raise click.ClickException(
            f"the demo needs the package {exc.name!r} from the demo extra: "
            "pip install 'chargeback-operator[demo]'"
        ) from exc
    # Absolute: the path ends up in a kubeconfig, where relative paths mean something else.
    wait = not no_wait and sys.stdin.isatty()
    options = DemoOptions(output=output.resolve(), hours=hours, users=users, wait=wait)
    try:
        ok = run_demo(options, Console())
    except Exception as exc:
        raise click.ClickException(f"the demo failed: {exc}") from exc
    if not ok:
        raise click.ClickException("the report did not match the ground truth")
