"""assets/postyard.example.toml documents every configuration key, at its default."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from appliance.config import Config, load_config
from appliance.config_example import example_toml

EXAMPLE = Path(__file__).parents[2] / "assets" / "postyard.example.toml"


def test_every_key_is_in_the_example_file() -> None:
    text = EXAMPLE.read_text()
    present = set(re.findall(r"^# ([a-z_]+) = ", text, flags=re.M))
    missing = sorted(f.name for f in dataclasses.fields(Config) if f.name not in present)
    assert not missing, (
        f"{EXAMPLE} lacks {missing}; regenerate it with "
        "`postyard config --toml > assets/postyard.example.toml`"
    )


def test_example_file_is_the_generated_one() -> None:
    assert EXAMPLE.read_text() == example_toml(), (
        "assets/postyard.example.toml is out of date; regenerate it with "
        "`postyard config --toml > assets/postyard.example.toml`"
    )


def test_uncommented_example_loads_to_the_defaults(tmp_path: Path) -> None:
    names = "|".join(f.name for f in dataclasses.fields(Config))
    text = re.sub(rf"^# (({names}) = )", r"\1", EXAMPLE.read_text(), flags=re.M)
    assert len(tomllib.loads(text)) == len(dataclasses.fields(Config))
    path = tmp_path / "postyard.toml"
    path.write_text(text)
    assert load_config(path, environ={}) == Config()
