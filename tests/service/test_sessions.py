"""Console sessions (signed cookies, CSRF tokens) and finding a spec field's line in pasted text."""

from __future__ import annotations

import json

import pytest

from service.console.spec_text import excerpt, locate_field, parse_spec_text
from service.sessions import SessionSigner, _b64, _unb64
from service.settings import Settings

SECRET = b"0123456789abcdef-test-secret"


def test_a_session_round_trips_and_names_the_owner_not_the_key() -> None:
    signer = SessionSigner(SECRET, max_age=60)
    session, cookie = signer.issue("key:abc", now=1000)
    assert signer.read(cookie, now=1001) == session
    assert session.owner == "key:abc"
    assert session.expires == 1060
    payload = json.loads(_unb64(cookie.split(".")[0]))
    assert payload == {"sid": session.sid, "own": "key:abc", "exp": 1060}
    assert signer.issue("key:abc", now=1000)[0].sid != session.sid  # every login gets a fresh id


def test_forged_expired_and_foreign_cookies_are_rejected() -> None:
    signer = SessionSigner(SECRET, max_age=60)
    _, cookie = signer.issue("key:abc", now=1000)
    payload, signature = cookie.split(".")
    forged = _b64(json.dumps({"sid": "x", "own": "key:other", "exp": 99999}).encode())
    assert signer.read(f"{forged}.{signature}", now=1001) is None  # owner changed, old signature
    assert signer.read(cookie, now=1060) is None  # expired
    assert SessionSigner(b"another secret, 16+ bytes", max_age=60).read(cookie, now=1001) is None
    for junk in ("", "abc", "a.b.c", f"{payload}.", f".{signature}", f"{payload}.!!!", "e30.e30"):
        assert signer.read(junk, now=1001) is None, junk


def test_csrf_tokens_are_bound_to_their_session() -> None:
    signer = SessionSigner(SECRET, max_age=60)
    first, _ = signer.issue(None)
    second, _ = signer.issue(None)
    token = signer.csrf_token(first)
    assert signer.csrf_valid(first, token)
    assert not signer.csrf_valid(second, token)
    assert not signer.csrf_valid(first, None)
    assert not signer.csrf_valid(None, token)
    assert not signer.csrf_valid(first, token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_the_secret_comes_from_the_settings_or_is_random_per_process() -> None:
    configured = Settings(session_secret="a shared secret of replicas")
    _, cookie = SessionSigner.from_settings(configured).issue("key:abc")
    assert SessionSigner.from_settings(configured).read(cookie) is not None  # another replica, same secret
    assert SessionSigner.from_settings(Settings()).read(cookie) is None  # a random secret
    with pytest.raises(ValueError, match="at least 16"):
        Settings(session_secret="short")


SPEC = """\
name: x
models:
  - name: smol
    dtype: float64
  - name: other
benchmarks:
  bbq: {limit: 1}
"""


@pytest.mark.parametrize(
    ("field", "line"),
    [
        ("models.0.dtype", 4),  # the field itself
        ("models.1.dtype", 5),  # missing: where its parent (the list item) starts
        ("benchmarks.bbq.limit", 7),  # flow style: the line of the mapping
        ("conditions", None),  # nowhere in the text
        (None, None),
    ],
)
def test_locate_field(field: str | None, line: int | None) -> None:
    assert locate_field(SPEC, field) == line


def test_locate_field_in_json_and_the_excerpt_around_it() -> None:
    text = json.dumps({"models": [{"name": "a", "dtype": "x"}]}, indent=2)
    line = locate_field(text, "models.0.dtype")
    assert line is not None
    assert '"dtype": "x"' in text.splitlines()[line - 1]
    shown = excerpt(SPEC, 4, context=1)
    assert [(s.number, s.marked) for s in shown] == [(3, False), (4, True), (5, False)]
    assert shown[1].text == "    dtype: float64"
    assert locate_field("models: [", "models") is None  # unparseable text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "paste a job spec"),
        ("models: [", "not valid YAML or JSON at line 1"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_parse_spec_text_errors_name_the_spec_field(text: str, message: str) -> None:
    from schemas.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=message) as caught:
        parse_spec_text(text)
    assert caught.value.field == "spec"
