"""Spec extraction from ticket bodies, safe YAML loading and validation."""
