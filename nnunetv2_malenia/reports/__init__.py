"""Radiology report text -> structured Malenia attributes (rules first, deterministic)."""
