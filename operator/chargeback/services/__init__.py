"""Services: orchestration of domain logic with injected adapters (collect, report, dashboards)."""
