"""What the commands share: reading manifests and times, Prometheus and GPU options, the ledger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from click.core import ParameterSource
from pydantic import BaseModel, ValidationError
from rich.console import Console

from chargeback.adapters.kube import client_from_kubeconfig, openshift_groups
from chargeback.api.base import problems
from chargeback.api.common import API_VERSION
from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import UsageReportSpec
from chargeback.api.source import SourceSpec
from chargeback.app.settings import OperatorSettings
from chargeback.domain import buckets
from chargeback.domain.pricing import PriceBook, PriceVersion, spec_digest

console = Console(stderr=True)


def parse_time(value: str, option: str) -> int:
    """Epoch milliseconds of an ISO 8601 time with zone (or ``now``); errors name the option."""
    if value == "now":
        return buckets.to_ms(dt.datetime.now(dt.UTC))
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from exc
    if moment.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} has no time zone; write e.g. 2026-01-01T00:00:00Z", param_hint=option
        )
    return buckets.to_ms(moment)


def load_manifests(path: Path, kind: str, option: str) -> list[dict[str, Any]]:
    """The documents of ``kind`` in a YAML file, with errors naming the file and option."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint=option) from exc
    if not documents:
        raise click.BadParameter(f"{path} holds no {kind}", param_hint=option)
    for document in documents:
        if not isinstance(document, dict) or document.get("kind") != kind:
            found = document.get("kind") if isinstance(document, dict) else type(document).__name__
            raise click.BadParameter(
                f"{path}: expected kind {kind}, found {found}", param_hint=option
            )
        if document.get("apiVersion") != API_VERSION:
            raise click.BadParameter(
                f"{path}: apiVersion must be {API_VERSION}, not {document.get('apiVersion')}",
                param_hint=option,
            )
    return documents


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, path: Path, option: str, prefix: str) -> M:
    """``data`` as ``model``, or a CLI error naming the file, the option and each bad field."""
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise click.BadParameter(f"{path}: {problems(exc, prefix)}", param_hint=option) from exc


def load_price_book(path: Path) -> tuple[str, PriceBook]:
    """A TierPricing file (one document per price version) as a price book."""
    versions = []
    names = set()
    for number, document in enumerate(load_manifests(path, "TierPricing", "--pricing"), 1):
        names.add((document.get("metadata") or {}).get("name", ""))
        spec = validated(TierPricingSpec, document.get("spec"), path, "--pricing", "spec.")
        effective = buckets.to_ms(spec.effective_from) if spec.effective_from else 0
        versions.append(PriceVersion(number, effective, spec, spec_digest(spec)))
    if len(names) != 1:
        raise click.BadParameter(
            f"{path}: all versions must name the same TierPricing", param_hint="--pricing"
        )
    try:
        return names.pop(), PriceBook(versions)
    except ValueError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--pricing") from exc


def load_report(path: Path) -> tuple[str, UsageReportSpec, str]:
    """A UsageReport manifest: (namespace/name, spec, pricing name)."""
    (document,) = load_manifests(path, "UsageReport", "--report")[:1]
    metadata = document.get("metadata") or {}
    spec = validated(UsageReportSpec, document.get("spec"), path, "--report", "spec.")
    name = f"{metadata.get('namespace', 'default')}/{metadata.get('name', path.stem)}"
    return name, spec, spec.pricing_ref.name


def load_source(path: Path) -> SourceSpec:
    """A SourceSpec from a YAML file: a bare source, or a UsageReport manifest's spec.source."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--source") from exc
    if isinstance(document, dict) and document.get("kind") == "UsageReport":
        document = (document.get("spec") or {}).get("source") or {}
    return validated(SourceSpec, document, path, "--source", "")


def prometheus_options(func: Any) -> Any:
    """Options that say how to reach Prometheus."""
    options = [
        click.option("--prometheus-url", required=True, envvar="CHARGEBACK_PROMETHEUS_URL",
                     help="Prometheus, Thanos Querier or Mimir base URL."),
        click.option("--token-file", type=click.Path(path_type=Path), default=None,
                     envvar="CHARGEBACK_PROMETHEUS_TOKEN_FILE",
                     help="Bearer token file, re-read for every request."),
        click.option("--ca-file", type=click.Path(exists=True, path_type=Path), default=None,
                     envvar="CHARGEBACK_PROMETHEUS_CA_FILE", help="CA bundle for TLS."),
        click.option("--insecure-skip-tls-verify", is_flag=True,
                     help="Do not verify the server certificate (testing only)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


FLAG_NAMES = {
    "prometheus_token_file": "--token-file",
    "prometheus_ca_file": "--ca-file",
    "namespaces": "--namespace",
}
"""Settings whose flag is not ``--<field-name>``."""
GPU_SETTINGS = tuple(f for f in OperatorSettings.model_fields if f.startswith("gpu_"))
BILLING_SETTINGS = tuple(f for f in OperatorSettings.model_fields if f.startswith("billing_"))


def flag(field: str) -> str:
    """The flag of an operator setting."""
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def settings_options(fields: Iterable[str]) -> Callable[[Any], Any]:
    """One option per operator setting in ``fields``, generated from the settings model.

    Each is named after its setting, carries the ``CHARGEBACK_*`` variable, the model's default
    and its documentation as help.
    """

    def decorate(func: Any) -> Any:
        for field in reversed(list(fields)):
            info = OperatorSettings.model_fields[field]
            name = flag(field)
            common: dict[str, Any] = {"envvar": f"CHARGEBACK_{field.upper()}",
                                      "show_envvar": True, "help": info.description}  # fmt: skip
            if info.annotation is bool:
                decls = [f"{name}/--no-{name[2:]}", field]
                option = click.option(*decls, default=info.default, show_default=True, **common)
            elif field == "namespaces":
                option = click.option(name, field, multiple=True, **common)
            else:
                kind = info.annotation if info.annotation in (int, float) else str
                option = click.option(name, field, default=info.default, show_default=True,
                                      type=kind, **common)  # fmt: skip
            func = option(func)
        return func

    return decorate


def settings_from(ctx: click.Context, fields: Iterable[str]) -> OperatorSettings:
    """Operator settings from the flags given (else the environment); errors name the flag."""
    given: dict[str, Any] = {}
    for field in fields:
        if ctx.get_parameter_source(field) in (None, ParameterSource.DEFAULT):
            continue
        value = ctx.params[field]
        given[field] = " ".join(value) if isinstance(value, tuple) else value
    try:
        return OperatorSettings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        hint = flag(field) if field in OperatorSettings.model_fields else None
        raise click.BadParameter(first["msg"], param_hint=hint) from exc


LEDGER_HELP = "SQLAlchemy URL, e.g. sqlite:///ledger.db or postgresql+psycopg://..."


def read_groups(kubeconfig: Path) -> dict[str, list[str]] | None:
    """OpenShift Groups from a cluster, None where the API does not exist."""
    try:
        with client_from_kubeconfig(kubeconfig) as api:
            return openshift_groups(api)
    except Exception as exc:
        raise click.ClickException(f"cannot read OpenShift Groups via {kubeconfig}: {exc}") from exc


def parse_bucket(bucket: str) -> int:
    """A bucket size such as 1h or 15m in milliseconds; errors name --bucket."""
    try:
        return buckets.duration_ms(bucket)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bucket") from exc
