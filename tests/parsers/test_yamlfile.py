from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from ingestor.errors import ConfigError
from parsers.yamlfile import load_yaml


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Action: Literal["Added", "Modified"]
    Who: str


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    record: Record


class Pack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[Rule]


PACK = """\
rules:
  - id: first
    record:
      Action: Added
      Who: "{user}"
  - id: second
    record:
      Action: Modify
      Who: "{user}"
"""


def test_validation_errors_name_file_line_and_key():
    doc = load_yaml("rules/x/pack.yaml", PACK)
    with pytest.raises(ValidationError) as info:
        Pack.model_validate(doc.data)
    error = doc.error(info.value)
    assert (error.path, error.line, error.key) == ("rules/x/pack.yaml", 8, "rules[1].record.Action")
    assert str(error).startswith("rules/x/pack.yaml:8: rules[1].record.Action: Input should be 'Added' or 'Modified'")


def test_a_missing_key_points_at_its_parent():
    doc = load_yaml("p.yaml", "rules:\n  - id: only\n")
    with pytest.raises(ValidationError) as info:
        Pack.model_validate(doc.data)
    error = doc.error(info.value)
    assert error.key == "rules[0].record" and error.line == 2


def test_syntax_errors_give_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  - id: x\n    record: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert info.value.path == str(path) and info.value.line == 4 and "YAML syntax" in str(info.value)


def test_duplicate_keys_are_refused_not_silently_collapsed():
    text = "rules:\n  - id: x\n    record:\n      Who: a\n      Who: b\n"
    with pytest.raises(ConfigError, match=r"duplicate key 'Who' \(first at line 4\)") as info:
        load_yaml("dup.yaml", text)
    assert info.value.line == 5


def test_python_tags_cannot_execute_anything():
    with pytest.raises(ConfigError, match="YAML"):
        load_yaml("evil.yaml", "x: !!python/object/apply:os.system ['echo pwned']\n")


def test_unreadable_and_non_utf8_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml(tmp_path / "missing.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"who: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml(latin)


def test_empty_file_is_none_data():
    assert load_yaml("empty.yaml", "").data is None
