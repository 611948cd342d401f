"""Settings: CONTRACT.md's validation rules, exactly, and the one-line failure.

Each bad value stops the program with a ConfigError naming the variable; the
legal combinations CONTRACT.md allows are accepted (validation is "exactly
this": no extra relations).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from authsvc.errors import ConfigError
from authsvc.settings import AuthSettings, load_settings
from tests.support import run_cli, server_env

# The integer settings CONTRACT.md bounds below.
AT_LEAST_ONE = [
    "AUTHSVC_ACCESS_TOKEN_TTL",
    "AUTHSVC_REFRESH_TOKEN_TTL",
    "AUTHSVC_REFRESH_TOKEN_MAX_TTL",
    "AUTHSVC_KEY_ROTATION_PERIOD",
    "AUTHSVC_KEY_PREPUBLISH",
    "AUTHSVC_JWKS_MAX_AGE",
]
AT_LEAST_ZERO = ["AUTHSVC_CLOCK_SKEW", "AUTHSVC_REFRESH_REUSE_GRACE"]
NOT_INTEGERS = ["abc", "1.5", "", "1e3", "0x10", "true"]


def _config_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> ConfigError:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return caught.value


def _names(error: ConfigError, variable: str) -> None:
    text = str(error)
    assert "\n" not in text
    assert text.startswith(variable + ":"), text


# --- integers ----------------------------------------------------------------------
@pytest.mark.parametrize("variable", AT_LEAST_ONE)
@pytest.mark.parametrize("value", ["0", "-1", *NOT_INTEGERS])
def test_positive_integers_refuse_bad_values(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    _names(_config_error(monkeypatch, **{variable: value}), variable)


@pytest.mark.parametrize("variable", AT_LEAST_ZERO)
@pytest.mark.parametrize("value", ["-1", "-100", *NOT_INTEGERS])
def test_non_negative_integers_refuse_bad_values(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    _names(_config_error(monkeypatch, **{variable: value}), variable)


@pytest.mark.parametrize("variable", AT_LEAST_ONE)
def test_one_is_the_smallest_legal_value(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "1")
    if variable == "AUTHSVC_KEY_PREPUBLISH":
        monkeypatch.setenv("AUTHSVC_JWKS_MAX_AGE", "1")
    settings = load_settings()
    assert getattr(settings, variable.removeprefix("AUTHSVC_").lower()) == 1


@pytest.mark.parametrize("variable", AT_LEAST_ZERO)
def test_zero_is_legal(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "0")
    assert getattr(load_settings(), variable.removeprefix("AUTHSVC_").lower()) == 0


def test_prepublish_shorter_than_jwks_max_age_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    error = _config_error(monkeypatch, AUTHSVC_KEY_PREPUBLISH="299", AUTHSVC_JWKS_MAX_AGE="300")
    _names(error, "AUTHSVC_KEY_PREPUBLISH")


def test_prepublish_equal_to_jwks_max_age_is_legal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHSVC_KEY_PREPUBLISH", "300")
    monkeypatch.setenv("AUTHSVC_JWKS_MAX_AGE", "300")
    assert load_settings().key_prepublish == 300


@pytest.mark.parametrize(
    "env",
    [
        # combine by minimum: none of these relations is a rule
        {"AUTHSVC_REFRESH_TOKEN_TTL": "1000", "AUTHSVC_REFRESH_TOKEN_MAX_TTL": "10"},
        {"AUTHSVC_ACCESS_TOKEN_TTL": "5000", "AUTHSVC_REFRESH_TOKEN_TTL": "10"},
        {"AUTHSVC_ACCESS_TOKEN_TTL": "5000", "AUTHSVC_REFRESH_TOKEN_MAX_TTL": "10"},
        {"AUTHSVC_KEY_PREPUBLISH": "100000", "AUTHSVC_KEY_ROTATION_PERIOD": "10"},
        {"AUTHSVC_JWKS_MAX_AGE": "5", "AUTHSVC_KEY_ROTATION_PERIOD": "1", "AUTHSVC_KEY_PREPUBLISH": "5"},
        {"AUTHSVC_REFRESH_REUSE_GRACE": "100000", "AUTHSVC_REFRESH_TOKEN_TTL": "10"},
        {"AUTHSVC_CLOCK_SKEW": "100000", "AUTHSVC_ACCESS_TOKEN_TTL": "1"},
    ],
)
def test_other_combinations_are_legal(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    for name, value in env.items():
        assert getattr(settings, name.removeprefix("AUTHSVC_").lower()) == int(value)


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert settings.issuer is None
    assert settings.database_url == "sqlite:///./authsvc.db"
    assert settings.key_store == "file"
    assert settings.keys_dir == Path("./keys")
    assert settings.key_passphrase is None
    assert settings.signing_alg == "RS256"
    assert (settings.access_token_ttl, settings.refresh_token_ttl, settings.refresh_token_max_ttl) == (
        900,
        1_209_600,
        7_776_000,
    )
    assert settings.refresh_reuse_grace == 0
    assert (settings.key_rotation_period, settings.key_prepublish, settings.jwks_max_age) == (
        2_592_000,
        86_400,
        300,
    )
    assert settings.clock_skew == 60
    assert settings.default_client_id == "cli"
    assert settings.default_audience == "authsvc"
    assert (settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism) == (
        19_456,
        2,
        1,
    )
    assert (settings.login_max_per_user, settings.login_max_per_address, settings.login_window) == (
        10,
        100,
        900,
    )


@pytest.mark.parametrize("value", ["HS256", "none", "rs256", ""])
def test_unknown_signing_alg_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    _names(_config_error(monkeypatch, AUTHSVC_SIGNING_ALG=value), "AUTHSVC_SIGNING_ALG")


# --- unknown variables and .env ------------------------------------------------------
def test_unknown_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _names(_config_error(monkeypatch, AUTHSVC_FOO="1"), "AUTHSVC_FOO")


def test_misspelt_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _names(_config_error(monkeypatch, AUTHSVC_ACCESS_TOKEN_TLL="60"), "AUTHSVC_ACCESS_TOKEN_TLL")


def test_test_variables_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHSVC_TEST_FOO", "anything")
    assert load_settings().access_token_ttl == 900


def test_dotenv_in_cwd_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTHSVC_ACCESS_TOKEN_TTL=42\nAUTHSVC_ISSUER=https://auth.example.com\n")
    settings = load_settings()
    assert settings.access_token_ttl == 42
    assert settings.issuer == "https://auth.example.com"


def test_dotenv_keys_without_prefix_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "ACCESS_TOKEN_TTL=0\nISSUER=http://evil.example/\nFOO=bar\nJWKS_MAX_AGE=oops\n"
    )
    settings = load_settings()
    assert settings.access_token_ttl == 900
    assert settings.issuer is None
    assert settings.jwks_max_age == 300


def test_dotenv_bad_value_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTHSVC_JWKS_MAX_AGE=0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    _names(caught.value, "AUTHSVC_JWKS_MAX_AGE")


def test_dotenv_unknown_prefixed_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTHSVC_NOT_A_SETTING=1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    _names(caught.value, "AUTHSVC_NOT_A_SETTING")


def test_environment_overrides_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("AUTHSVC_ACCESS_TOKEN_TTL=42\n")
    monkeypatch.setenv("AUTHSVC_ACCESS_TOKEN_TTL", "43")
    assert load_settings().access_token_ttl == 43


# --- the issuer ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "issuer",
    [
        "https://auth.example.com",
        "https://auth.example.com:8443",
        "http://127.0.0.1:9000",
        "http://localhost:8000",
        "http://[::1]:8000",
        "http://127.0.0.1",
        # a path: every endpoint is served under it (RFC 8414 §3 places the metadata)
        "https://auth.example.com/oauth",
        "https://example.com/auth/tenant-1",
        "https://example.com/a.b~c_d-e",
        "http://127.0.0.1:9000/auth",
    ],
)
def test_good_issuers_are_kept_byte_for_byte(monkeypatch: pytest.MonkeyPatch, issuer: str) -> None:
    monkeypatch.setenv("AUTHSVC_ISSUER", issuer)
    assert load_settings().issuer == issuer


@pytest.mark.parametrize(
    "issuer",
    [
        "https://auth.example.com/",  # trailing slash
        "http://127.0.0.1:9000/",
        "https://auth.example.com/oauth/",  # a path with a trailing slash
        "https://auth.example.com/a//b",  # an empty segment
        "https://auth.example.com/a/./b",  # dot segments
        "https://auth.example.com/a/..",
        "https://auth.example.com/.",
        "https://auth.example.com/a%2Fb",  # percent-encoding (the issuer is compared byte for byte)
        "https://auth.example.com/a b",
        "https://auth.example.com/oauth?x=1",
        "https://auth.example.com/oauth#x",
        "https://auth.example.com?tenant=1",  # query
        "https://auth.example.com?",
        "https://auth.example.com#frag",  # fragment
        "https://auth.example.com#",
        "http://auth.example.com",  # http off loopback
        "http://10.0.0.1:8000",
        "http://127.0.0.2",
        "ftp://auth.example.com",
        "auth.example.com",
        "https://",
        "https://user:pw@auth.example.com",
    ],
)
def test_bad_issuers_are_refused(monkeypatch: pytest.MonkeyPatch, issuer: str) -> None:
    _names(_config_error(monkeypatch, AUTHSVC_ISSUER=issuer), "AUTHSVC_ISSUER")


@pytest.mark.parametrize(
    "issuer",
    [
        "https://auth.example.com\n",  # urlsplit drops \t \r \n, the issuer would keep them
        "https://auth.exa\tmple.com",
        " https://auth.example.com",  # urlsplit strips leading blanks
        "https://auth example.com",
        "https://auth.example.com:99999",  # port out of range
        "https://auth.example.com:80x",  # not a port
        "https://auth.example.com:",  # empty port
    ],
)
def test_issuers_that_are_not_urls_are_refused(monkeypatch: pytest.MonkeyPatch, issuer: str) -> None:
    """The issuer goes byte for byte into every token and URL: it must be a clean URL."""
    _names(_config_error(monkeypatch, AUTHSVC_ISSUER=issuer), "AUTHSVC_ISSUER")


_issuer_suffixes = st.sampled_from(["", "/", "//", "/x", "/x/", "?", "?a=1", "#", "#x", "/?", ":", ":8443"])
_hosts = st.sampled_from(["auth.example.com", "127.0.0.1", "localhost", "[::1]", "a", "x.y"])
_issuer_like = st.builds(
    lambda scheme, host, port, suffix, noise: f"{scheme}://{host}{port}{suffix}{noise}",
    st.sampled_from(["http", "https", "HTTPS", "ftp", ""]),
    _hosts,
    st.sampled_from(["", ":1", ":8000", ":65535"]),
    _issuer_suffixes,
    st.text(max_size=3),
)


@given(issuer=st.one_of(_issuer_like, st.text(max_size=40)))
def test_any_accepted_issuer_is_an_origin_and_a_clean_path(issuer: str) -> None:
    try:
        settings = AuthSettings(issuer=issuer)
    except ValidationError:
        return
    accepted = settings.issuer
    assert accepted == issuer  # byte for byte
    assert not accepted.endswith("/")
    parts = urlsplit(accepted)
    assert parts.scheme.lower() in ("http", "https")
    assert (parts.query, parts.fragment) == ("", "")
    assert accepted == f"{parts.scheme}://{parts.netloc}{parts.path}"
    segments = parts.path.split("/")[1:] if parts.path else []
    assert all(segment not in ("", ".", "..") and "%" not in segment for segment in segments)
    assert settings.issuer_path == parts.path


# --- AUTHSVC_ALLOW_HTTP_ISSUER, AUTHSVC_DOCS ---------------------------------------------------
@pytest.mark.parametrize(
    "issuer", ["http://auth.example.com", "http://10.0.0.1:8000", "http://192.168.1.5:8000/auth"]
)
def test_allow_http_issuer_accepts_http_off_loopback(monkeypatch: pytest.MonkeyPatch, issuer: str) -> None:
    _names(_config_error(monkeypatch, AUTHSVC_ISSUER=issuer), "AUTHSVC_ISSUER")
    monkeypatch.setenv("AUTHSVC_ALLOW_HTTP_ISSUER", "true")
    settings = load_settings()
    assert settings.issuer == issuer
    assert settings.http_issuer_off_loopback
    assert not settings.secure_cookies


@pytest.mark.parametrize("issuer", ["ftp://auth.example.com", "http://auth.example.com/", "http://x/a//b"])
def test_allow_http_issuer_allows_nothing_else(monkeypatch: pytest.MonkeyPatch, issuer: str) -> None:
    error = _config_error(monkeypatch, AUTHSVC_ISSUER=issuer, AUTHSVC_ALLOW_HTTP_ISSUER="true")
    _names(error, "AUTHSVC_ISSUER")


@pytest.mark.parametrize("variable", ["AUTHSVC_ALLOW_HTTP_ISSUER", "AUTHSVC_DOCS"])
@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_boolean_settings_refuse_bad_values(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    _names(_config_error(monkeypatch, **{variable: value}), variable)


def test_http_issuer_and_docs_are_off_by_default() -> None:
    settings = load_settings()
    assert (settings.allow_http_issuer, settings.docs) == (False, False)
    assert settings.issuer_path == ""


@given(issuer=st.one_of(_issuer_like, st.text(max_size=40)))
def test_any_accepted_issuer_is_a_clean_url(issuer: str) -> None:
    """No whitespace or control characters (urlsplit silently drops some), a real port."""
    try:
        accepted = AuthSettings(issuer=issuer).issuer
    except ValidationError:
        return
    assert accepted is not None
    assert all(0x21 <= ord(c) <= 0x7E for c in accepted), "whitespace or control characters"
    port = urlsplit(accepted).port
    assert port is None or 1 <= port <= 65535
    assert not accepted.endswith(":")


# --- through the command line ------------------------------------------------------------
async def test_cli_bad_setting_is_one_line_exit_1(tmp_path: Path) -> None:
    cases = [
        ("access_token_ttl", "0", "AUTHSVC_ACCESS_TOKEN_TTL"),
        ("issuer", "https://auth.example.com/", "AUTHSVC_ISSUER"),
        ("foo", "1", "AUTHSVC_FOO"),
    ]
    results = await asyncio.gather(
        *(
            asyncio.to_thread(
                run_cli, "users", "list", env=server_env(tmp_path, **{setting: value}), cwd=tmp_path
            )
            for setting, value, _variable in cases
        )
    )
    for (_setting, _value, variable), result in zip(cases, results, strict=True):
        assert result.returncode == 1, (variable, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert variable in lines[0]
        assert "Traceback" not in result.stderr + result.stdout
