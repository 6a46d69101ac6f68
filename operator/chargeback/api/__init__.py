"""API models: pydantic spec and status of TierPricing and UsageReport, and CRD generation."""
