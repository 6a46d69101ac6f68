"""chargeback-operator: billing-grade AI token chargeback from gateway counters in Prometheus."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One version for the wheel, the image tag, the chart and the OLM bundle: pyproject.toml's.
    __version__ = version("chargeback-operator")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
