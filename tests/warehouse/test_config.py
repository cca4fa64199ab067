"""warehouse.toml: defaults, round trip, and errors that name the key."""

from __future__ import annotations

import pytest

from warehouse.config import Config, SplitConfig, load_config, parse_config
from warehouse.errors import ConfigError


def test_default_round_trip():
    cfg = Config.default()
    assert parse_config(cfg.to_toml()) == cfg
    assert cfg.splits.train == 0.70 and cfg.bands == ("g", "r", "i", "z", "y")


def test_custom_round_trip():
    cfg = Config(
        bands=("u", "g", "r", "i"),
        max_rows_per_partition=10,
        splits=SplitConfig(0.6, 0.2, 0.2, salt="s", mode="healpix", healpix_order=5),
    )
    assert parse_config(cfg.to_toml()) == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[splits]\ntrain = 0.7\nvalidation = 0.2\ntest = 0.2\n", "must add up to 1"),
        (
            "[splits]\ntrain = -0.1\nvalidation = 0.6\ntest = 0.5\n",
            "[splits] train must be between 0 and 1",
        ),
        ('[splits]\nmode = "random"\n', "[splits] mode must be one of object, healpix"),
        ('[splits]\nsalt = ""\n', "[splits] salt must be a non-empty string"),
        ("[splits]\nhealpix_order = 31\n", "healpix_order must be in 0..29"),
        ('[warehouse]\nbands = ["g", "g"]\n', "lists a band twice"),
        ('[warehouse]\nbands = ["G-band"]\n', "is not a band name"),
        ('[warehouse]\nbands = "grizy"\n', "bands must be a list"),
        (
            "[partitioning]\nmax_rows_per_partition = 0\n",
            "max_rows_per_partition must be a positive",
        ),
        ("[partitioning]\nmax_order = 40\n", "max_order must be an integer in 0..29"),
        ("[splitz]\n", "unknown section [splitz]"),
        ("[splits]\ntrian = 0.7\n", "unknown key(s) trian in [splits]"),
        ("[splits\n", "is not valid TOML"),
        # malformed: checked by every command (gwh sql took them; a load failed, or waited 5 s)
        ('[compute]\ndask = "local:abc"\n', "[compute] dask 'local:abc': write local:N with N"),
        ('[compute]\ndask = "local:0"\n', "[compute] dask 'local:0': write local:N with N >= 1"),
        ('[compute]\ndask = "scheduler"\n', "[compute] dask 'scheduler' is no scheduler address"),
    ],
)
def test_invalid_config_names_the_key(text, message):
    with pytest.raises(ConfigError) as err:
        parse_config(text, "wh/warehouse.toml")
    assert message in str(err.value)
    assert str(err.value).count("wh/warehouse.toml") == 1  # bands: named twice before


def test_a_dask_address_is_checked_for_its_form_not_for_this_machine():
    """A warehouse.toml may be shared by machines of other sizes: local:99 is for --dask to
    judge on the machine that runs it."""
    for address in ("local:99", "tcp://10.0.0.5:8786", "scheduler:8786", "none"):
        assert parse_config(f'[compute]\ndask = "{address}"\n').dask == address


def test_missing_file_says_how_to_create(tmp_path):
    with pytest.raises(ConfigError, match="gwh init"):
        load_config(tmp_path)


def test_bad_config_is_a_clear_cli_error(cli, make_warehouse):
    wh = make_warehouse()
    (wh.root / "warehouse.toml").write_text("[splits]\ntrain = 2\n")
    result = cli("views", "--root", wh.root)
    assert result.exit_code == 1 and "[splits] train must be between 0 and 1" in result.stderr


def test_config_that_is_not_utf8_text_is_a_clear_cli_error(cli, make_warehouse):
    wh = make_warehouse()
    path = wh.root / "warehouse.toml"
    path.write_bytes(path.read_bytes() + b"# caf\xe9 (Latin-1)\n")
    result = cli("views", "--root", wh.root)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert f"{path} is not UTF-8 text (byte 0xe9 at offset " in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
