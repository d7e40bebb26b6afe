"""The built-in rule packs (YAML data, shipped with the package; see README.md here)."""
