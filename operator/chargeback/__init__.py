"""chargeback-operator: billing-grade AI token chargeback from gateway counters in Prometheus."""

__version__ = "0.1.0"
