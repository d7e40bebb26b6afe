"""The YAML rule engine: rule files compiled at load into an indexed RuleSet."""

from __future__ import annotations

from .engine import Match, Rule, RuleSet, build_ruleset, compile_pack
from .schema import PackSpec, RuleSpec

__all__ = ["Match", "PackSpec", "Rule", "RuleSet", "RuleSpec", "build_ruleset", "compile_pack"]
