"""Pure domain logic: periods, counter accounting, pricing, attribution, report assembly."""
