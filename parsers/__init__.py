"""Syslog framing and parsing, and the YAML rule engine (input path)."""
