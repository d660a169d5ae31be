"""custody.toml: parsing, writing, and the order flag > environment > file > default."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.app.home import Home
from custody.app.settings import (
    Settings,
    load_settings,
    parse_settings,
    render_settings,
    write_settings,
)
from custody.errors import InputError, UsageError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CUSTODY_DB", "CUSTODY_VAULT", "CUSTODY_PARTY"):
        monkeypatch.delenv(name, raising=False)


def _home(tmp_path: Path, text: str | None = None) -> Path:
    root = tmp_path / "h"
    root.mkdir(exist_ok=True)
    if text is not None:
        (root / "custody.toml").write_text(text)
    return root


def test_no_file_means_built_in_defaults(tmp_path: Path) -> None:
    root = _home(tmp_path)
    h = Home.locate(root)
    assert h.db_url == f"sqlite:///{root / 'custody.db'}"
    assert h.vault is None and h.party is None
    assert load_settings(root) == Settings()


def test_file_then_environment_then_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _home(tmp_path, 'db = "sqlite:////f.db"\nvault = "share"\nparty = "alice"\n')
    h = Home.locate(root)
    assert (h.db_url, h.vault, h.party) == ("sqlite:////f.db", root / "share", "alice")
    assert h.vault_source == str(root / "custody.toml")  # relative: to the home
    monkeypatch.setenv("CUSTODY_DB", "sqlite:////e.db")
    monkeypatch.setenv("CUSTODY_VAULT", "/env/vault")
    monkeypatch.setenv("CUSTODY_PARTY", "bob")
    h = Home.locate(root)
    assert (h.db_url, h.vault, h.party) == ("sqlite:////e.db", Path("/env/vault"), "bob")
    assert h.vault_source == "CUSTODY_VAULT"
    h = Home.locate(root, "sqlite:////flag.db", "/flag/vault")
    assert (h.db_url, h.vault, h.vault_source) == (
        "sqlite:////flag.db",
        Path("/flag/vault"),
        "--vault",
    )


def test_an_empty_environment_variable_does_not_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _home(tmp_path, 'db = "sqlite:////f.db"\n')
    monkeypatch.setenv("CUSTODY_DB", "")
    assert Home.locate(root).db_url == "sqlite:////f.db"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('colour = "blue"\n', "unknown key 'colour'"),
        ("db = 3\n", "key 'db' must be"),
        ('vault = ""\n', "key 'vault' must be"),
        ("party = [1]\n", "key 'party' must be"),
        ("[db]\nurl = 'x'\n", "key 'db' must be"),
        ('db = "x\n', "not valid TOML"),
        ('db = "a\\nb"\n', "key 'db' must be"),
    ],
)
def test_a_bad_file_is_refused_naming_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    root = _home(tmp_path, text)
    with pytest.raises(InputError) as err:
        Home.locate(root)
    assert str(root / "custody.toml") in err.value.message
    assert needle in err.value.message
    assert "\n" not in err.value.message


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    root = _home(tmp_path)
    (root / "custody.toml").write_bytes(b'db = "\xff"\n')
    with pytest.raises(InputError, match="not UTF-8"):
        load_settings(root)


def test_write_then_read_round_trips_hard_strings(tmp_path: Path) -> None:
    root = _home(tmp_path)
    hard = 'C:\\evidence "share"\t\x01\x7f é ∑'
    path = write_settings(root, Settings(db="postgresql+psycopg://u@h/db", vault=hard))
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_settings(root) == Settings(db="postgresql+psycopg://u@h/db", vault=hard)


def test_a_path_that_is_not_utf8_is_refused_not_mangled() -> None:
    with pytest.raises(UsageError, match="not UTF-8"):
        render_settings(Settings(vault="/mnt/\udcff"))


@given(
    st.builds(
        Settings,
        db=st.none() | st.text(min_size=1).filter(lambda s: "\n" not in s and "\0" not in s),
        vault=st.none() | st.text(min_size=1).filter(lambda s: "\n" not in s and "\0" not in s),
        party=st.none() | st.text(min_size=1).filter(lambda s: "\n" not in s and "\0" not in s),
    )
)
def test_rendered_settings_are_toml_that_reads_back(settings: Settings) -> None:
    try:
        text = render_settings(settings)
    except UsageError:
        return  # a lone surrogate: not text TOML can hold
    assert tomllib.loads(text) == {k: v for k, v in vars(settings).items() if v is not None}
    assert parse_settings(text.encode(), "x") == settings


@given(st.binary(max_size=300))
def test_parse_settings_fails_only_with_input_error(data: bytes) -> None:
    try:
        parse_settings(data, "custody.toml")
    except InputError as exc:
        assert "\n" not in exc.message
