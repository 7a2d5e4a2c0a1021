"""Pure planning: jobs, grouping, placement, dispatch. No I/O here."""
