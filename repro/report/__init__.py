"""Reports: statistics, tables and figures rendered from stored results only (no torch, no models)."""
