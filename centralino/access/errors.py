"""Access errors; each says what was wrong with the input."""


class AccessError(ValueError):
    """Base class: input the access rules refuse."""


class InvalidAccount(AccessError):
    """A username, role, agent id or team set that cannot make an account."""


class WeakPassword(AccessError):
    """A password the policy refuses; the message says why."""


class UnknownAccount(AccessError, LookupError):
    """No account by that name."""
