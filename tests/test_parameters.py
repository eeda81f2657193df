"""Parameters and config overrides from the command line (SPEC 5.4)."""

from __future__ import annotations

import pytest

from sequent.errors import ConfigError, ParameterError
from sequent.parameters import (
    check_parameters,
    config_overrides,
    parse_assignments,
    read_params_file,
)


def test_values_are_json_where_they_parse_and_strings_otherwise():
    assert parse_assignments(
        ["flag=true", "n=3", "items=[1, 2]", "day=2024-01-31", "name=", 'text="5"', "n=4"], "-p"
    ) == {"flag": True, "n": 4, "items": [1, 2], "day": "2024-01-31", "name": "", "text": "5"}


@pytest.mark.parametrize("bad", ["novalue", "=3", "not a name=1"])
def test_a_pair_that_is_not_key_equals_value_is_refused(bad):
    with pytest.raises(ParameterError, match=r"-p .* is not KEY=VALUE"):
        parse_assignments([bad], "-p")


def test_a_parameter_the_builder_does_not_take_lists_those_it_takes():
    def build(fail_c2=False, *, size=1):
        return None

    check_parameters(build, {"fail_c2": True, "size": 2}, "pitch.py:build")
    with pytest.raises(ParameterError, match=r"no parameter 'colour'; it takes: fail_c2, size"):
        check_parameters(build, {"colour": "red"}, "pitch.py:build")

    def needs(day):
        return None

    with pytest.raises(ParameterError, match=r"cannot be called without arguments.*-p NAME=VALUE"):
        check_parameters(needs, {}, "f.py:needs")

    def open_ended(**anything):
        return None

    check_parameters(open_ended, {"whatever": 1}, "f.py:open_ended")


def test_params_files_in_toml_and_yaml(tmp_path):
    (tmp_path / "p.toml").write_text('fail_c2 = true\nday = "2024-01-31"\n')
    (tmp_path / "p.yaml").write_text("fail_c2: true\nsizes: [1, 2]\n")
    assert read_params_file(tmp_path / "p.toml") == {"fail_c2": True, "day": "2024-01-31"}
    assert read_params_file(tmp_path / "p.yaml") == {"fail_c2": True, "sizes": [1, 2]}
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match=r"holds list, not a table"):
        read_params_file(tmp_path / "list.yaml")
    with pytest.raises(ParameterError, match=r"cannot be read"):
        read_params_file(tmp_path / "missing.toml")
    with pytest.raises(ParameterError, match=r"neither TOML nor YAML"):
        read_params_file(tmp_path / "p.json")


def test_config_overrides_are_checked_flow_keys():
    assert config_overrides(["stop_on_exception=false", "logdir=/tmp/x"], 4) == {
        "stop_on_exception": False,
        "logdir": "/tmp/x",
        "max_concurrent": 4,
    }
    with pytest.raises(ConfigError, match=r"'colour' is not a flow config key; the keys are"):
        config_overrides(["colour=red"], None)
    with pytest.raises(ConfigError, match=r"max_concurrent must be a whole number"):
        config_overrides(["max_concurrent=lots"], None)
