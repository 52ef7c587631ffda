"""The access policy as plain functions: roles and teams, sessions, logins, passwords,
redirects, origins and hosts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centralino.access import credentials
from centralino.access.errors import InvalidAccount, WeakPassword
from centralino.access.models import (
    Decision,
    Origin,
    Principal,
    Role,
    Rule,
    SessionRecord,
    SessionStatus,
    Via,
)
from centralino.access.passwords import Passwords
from centralino.access.policy import (
    LoginLimits,
    SessionPolicy,
    authorise,
    can_reach_agent,
    check_account,
    check_password,
    check_username,
    host_allowed,
    landing_page,
    login_blocked,
    origin_allowed,
    parse_origin,
    password_problems,
    safe_next,
    session_status,
    should_touch,
    visible_agent_ids,
)

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def who(role: Role, *, agent_id: str | None = None, teams: set[str] | None = None) -> Principal:
    return Principal(
        account_id=1,
        username="u",
        role=role,
        agent_id=agent_id,
        teams=frozenset(teams or ()),
        via=Via.SESSION,
    )


ADMIN = who(Role.ADMIN)
BLUE_SUPERVISOR = who(Role.SUPERVISOR, teams={"blue"})
ANN = who(Role.AGENT, agent_id="a1", teams={"blue"})


# --- who reaches which agent -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "agent", "teams", "allowed"),
    [
        (ADMIN, "a9", {"red"}, True),
        (ADMIN, "ghost", set(), True),
        (ANN, "a1", {"blue"}, True),
        (ANN, "a2", {"blue"}, False),  # a team mate's desktop is still not hers
        (BLUE_SUPERVISOR, "a2", {"blue"}, True),
        (BLUE_SUPERVISOR, "a3", {"green", "blue"}, True),
        (BLUE_SUPERVISOR, "a4", {"green"}, False),
        (BLUE_SUPERVISOR, "ghost", set(), False),
        (who(Role.SUPERVISOR, agent_id="s1"), "s1", set(), True),  # a supervisor on the phones
    ],
)
def test_given_role_and_teams_when_reaching_an_agent_then_policy_decides(
    principal: Principal, agent: str, teams: set[str], allowed: bool
) -> None:
    assert can_reach_agent(principal, agent, teams) is allowed
    expected = Decision.ALLOW if allowed else Decision.FORBIDDEN
    assert authorise(principal, Rule.AGENT_SCOPED, agent_id=agent, agent_teams=teams) == expected


def test_rules_for_anonymous_any_account_and_supervision() -> None:
    assert authorise(None, Rule.PUBLIC) is Decision.ALLOW
    for rule in (Rule.ANY_ACCOUNT, Rule.AGENT_SCOPED, Rule.SUPERVISION):
        assert authorise(None, rule, agent_id="a1") is Decision.UNAUTHENTICATED
    assert authorise(ANN, Rule.ANY_ACCOUNT) is Decision.ALLOW
    assert authorise(ANN, Rule.SUPERVISION) is Decision.FORBIDDEN
    assert authorise(BLUE_SUPERVISOR, Rule.SUPERVISION) is Decision.ALLOW
    assert authorise(ADMIN, Rule.SUPERVISION) is Decision.ALLOW
    assert authorise(ADMIN, Rule.AGENT_SCOPED) is Decision.FORBIDDEN  # no agent named: a bug


def test_the_admin_rule_lets_only_admins_through() -> None:
    assert authorise(None, Rule.ADMIN) is Decision.UNAUTHENTICATED
    assert authorise(ANN, Rule.ADMIN) is Decision.FORBIDDEN
    assert authorise(BLUE_SUPERVISOR, Rule.ADMIN) is Decision.FORBIDDEN
    assert authorise(ADMIN, Rule.ADMIN) is Decision.ALLOW


def test_visible_agents_and_landing_pages() -> None:
    agents = [("a1", {"blue"}), ("a2", {"blue"}), ("a3", {"green"})]
    assert visible_agent_ids(ANN, agents) == {"a1"}
    assert visible_agent_ids(BLUE_SUPERVISOR, agents) == {"a1", "a2"}
    assert visible_agent_ids(ADMIN, agents) == {"a1", "a2", "a3"}
    assert landing_page(ANN) == "/desktop/a1"
    assert landing_page(BLUE_SUPERVISOR) == "/"


# --- accounts and passwords ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["anna", "a.rossi@acme", "agent_101", "A-1"])
def test_good_usernames(name: str) -> None:
    assert check_username(name) == name


@pytest.mark.parametrize(
    "name", ["", "<script>alert(1)</script>", "anna rossi", "-dash", "x" * 65, "аnna", "a\nb"]
)
def test_bad_usernames_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidAccount, match="expected 1-64 letters"):
        check_username(name)


def test_account_shapes() -> None:
    assert check_account(role="agent", agent_id="a1", teams=["blue"]) == (
        Role.AGENT,
        "a1",
        frozenset({"blue"}),
    )
    with pytest.raises(InvalidAccount, match="needs --agent-id"):
        check_account(role="agent", agent_id=None, teams=[])
    with pytest.raises(InvalidAccount, match="role 'root'"):
        check_account(role="root", agent_id=None, teams=[])
    with pytest.raises(InvalidAccount, match="team"):
        check_account(role="supervisor", agent_id=None, teams=["blue team"])
    with pytest.raises(InvalidAccount, match="agent id"):
        check_account(role="agent", agent_id="a/1", teams=[])


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "shorter than 12"),
        ("x" * 257, "longer than 256"),
        ("anna-and-her-cat", "contains the username"),
        ("password1234", "too easy"),
        ("aaaaaaaaaaaaaaaa", "too easy"),
        ("good password\n", "control characters"),
    ],
)
def test_weak_passwords_say_why(password: str, problem: str) -> None:
    assert any(problem in p for p in password_problems(password, username="Anna"))
    with pytest.raises(WeakPassword, match=problem):
        check_password(password, username="Anna")


def test_a_good_password_passes() -> None:
    assert password_problems("correct horse battery staple", username="anna") == []


def test_passwords_are_argon2id_salted_and_verified() -> None:
    passwords = Passwords()
    first, second = passwords.hash("correct horse"), passwords.hash("correct horse")
    assert first.startswith("$argon2id$") and "m=65536,t=3,p=4" in first
    assert first != second  # salted
    assert passwords.verify(first, "correct horse")
    assert not passwords.verify(first, "correct horsE")
    assert not passwords.verify(None, "correct horse")  # unknown account: always false
    assert not passwords.verify("not a hash", "correct horse")
    assert not passwords.needs_rehash(first)


# --- sessions, logins --------------------------------------------------------------------------


def record(
    *, age_s: float, idle_s: float, ttl_s: float = 3600, revoked: bool = False
) -> SessionRecord:
    created = T0 - timedelta(seconds=age_s)
    return SessionRecord(
        account_id=1,
        created_at=created,
        last_seen_at=T0 - timedelta(seconds=idle_s),
        expires_at=created + timedelta(seconds=ttl_s),
        revoked=revoked,
    )


@pytest.mark.parametrize(
    ("rec", "status"),
    [
        (record(age_s=10, idle_s=5), SessionStatus.VALID),
        (record(age_s=3600, idle_s=0), SessionStatus.EXPIRED),  # the expiry instant is out
        (record(age_s=100, idle_s=600), SessionStatus.IDLE),
        (record(age_s=10, idle_s=5, revoked=True), SessionStatus.REVOKED),
    ],
)
def test_session_status(rec: SessionRecord, status: SessionStatus) -> None:
    policy = SessionPolicy(ttl_s=3600, idle_s=600, touch_every_s=60)
    assert session_status(rec, now=T0, policy=policy) is status


def test_sessions_are_touched_at_most_once_a_minute() -> None:
    policy = SessionPolicy(touch_every_s=60)
    assert not should_touch(record(age_s=100, idle_s=59), now=T0, policy=policy)
    assert should_touch(record(age_s=100, idle_s=60), now=T0, policy=policy)
    assert policy.expires_at(T0) == T0 + timedelta(hours=12)


def test_login_blocked_per_user_or_per_address() -> None:
    limits = LoginLimits(max_failures_per_user=5, max_failures_per_address=20)
    assert not login_blocked(user_failures=4, address_failures=19, limits=limits)
    assert login_blocked(user_failures=5, address_failures=0, limits=limits)
    assert login_blocked(user_failures=0, address_failures=20, limits=limits)


# --- next=, origins, hosts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/desktop/a1", "/desktop/a1"),
        ("/wallboard?x=1", "/wallboard?x=1"),
        ("//evil.example/", "/home"),
        ("/\\evil.example", "/home"),
        ("https://evil.example/", "/home"),
        ("javascript:alert(1)", "/home"),
        ("desktop/a1", "/home"),
        ("/ok\r\nSet-Cookie: x=1", "/home"),
        ("/a\\b", "/home"),
        ("", "/home"),
        (None, "/home"),
        ("/" + "x" * 600, "/home"),
    ],
)
def test_next_is_only_ever_a_local_path(raw: str | None, expected: str) -> None:
    assert safe_next(raw, default="/home") == expected


@given(st.text(max_size=80))
def test_next_never_leaves_the_site(raw: str) -> None:
    result = safe_next(raw, default="/")
    assert result.startswith("/") and not result.startswith(("//", "/\\"))
    assert "\\" not in result and "\n" not in result


PUBLIC = {Origin("https", "cc.example.com", 443), Origin("http", "127.0.0.1", 8080)}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://cc.example.com", True),
        ("https://CC.example.com:443", True),
        ("http://cc.example.com", False),  # scheme differs
        ("https://cc.example.com:8443", False),  # port differs
        ("https://cc.example.com.evil.net", False),
        ("http://127.0.0.1:8080", True),
        ("null", False),
        ("", False),
        (None, False),
    ],
)
def test_origin_must_match_scheme_host_and_port(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, PUBLIC) is allowed


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("cc.example.com", True),
        ("127.0.0.1:8080", True),
        ("rebind.attacker.example:8080", False),  # DNS rebinding: their name, our address
        ("127.0.0.1:9999", False),
        ("cc.example.com@evil", False),
        ("", False),
        (None, False),
    ],
)
def test_host_must_be_a_public_origin(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, PUBLIC) is allowed


def test_origin_parsing_and_printing() -> None:
    assert parse_origin("https://cc.example.com/") == Origin("https", "cc.example.com", 443)
    assert str(Origin("https", "cc.example.com", 443)) == "https://cc.example.com"
    assert str(Origin("http", "::1", 8080)) == "http://[::1]:8080"
    assert parse_origin("ftp://x") is None
    assert parse_origin("http://x:99999") is None


def test_credentials_are_random_digested_and_csrf_is_tied_to_the_session() -> None:
    a, b = credentials.new_session_id(), credentials.new_session_id()
    assert a != b and len(a) >= 43
    assert credentials.new_api_token().startswith("cnt_")
    assert credentials.digest(a) != credentials.digest(b) and len(credentials.digest(a)) == 32
    assert credentials.csrf_matches(a, credentials.csrf_for(a))
    assert not credentials.csrf_matches(b, credentials.csrf_for(a))
    assert not credentials.csrf_matches(a, None)
    assert not credentials.csrf_matches(a, "")
    assert credentials.csrf_for(a) not in a  # the token does not reveal the session id


@given(st.text(max_size=60))
def test_any_origin_or_host_header_parses_or_is_refused_never_raises(value: str) -> None:
    origin = parse_origin(value)
    assert origin is None or origin.scheme in ("http", "https")
    assert isinstance(origin_allowed(value, PUBLIC), bool)
    assert isinstance(host_allowed(value, PUBLIC), bool)
