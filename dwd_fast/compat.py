"""Exact drop-ins for the original DWD functions (filled in below)."""
