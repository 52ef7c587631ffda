"""Several Asterisk servers' AMI links seen as one: events from every server, an action for a
phone to the server that hosts it, list actions merged.

A site may run several Asterisk servers, each with its own agents' phones (one per office, or
a pair sharing the load). Every Centralino process keeps one AMI link per server. Watchers
(answers, transfers, phones going away) subscribe to all of them: an event means the same
whichever server raised it, and its effect is applied once because each watcher acts only for
the calls or agents it knows, through the ACD's conditional operations. An Originate (a
callback, a supervisor's ChanSpy) must go to the server where the phone is registered:
`link(endpoint)` picks it from the agents' settings. The reconciling sweep needs every call up,
so `connected` means every link is up and `action_list` merges every server's answer (the
sweep decides nothing while a server is out of sight).

Uniqueids must be unique across the servers: give each its own `systemname` in asterisk.conf
(Asterisk then prefixes every uniqueid with it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from centralino.asterisk.ami import AmiEventList
from centralino.asterisk.ami_client import AmiClient, EventCallback

DEFAULT_SERVER = ""


class AmiGroup:
    """The AMI links of every Asterisk server, by name ("" is the default server)."""

    def __init__(
        self, clients: Mapping[str, AmiClient], *, endpoints: Mapping[str, str] | None = None
    ) -> None:
        if not clients:
            raise ValueError("an AMI group needs at least one server")
        self._clients = dict(clients)
        self._default = (
            DEFAULT_SERVER if DEFAULT_SERVER in self._clients else next(iter(self._clients))
        )
        unknown = {s for s in (endpoints or {}).values() if s not in self._clients}
        if unknown:
            raise ValueError(f"endpoints name unknown Asterisk servers: {sorted(unknown)}")
        self._server_of = dict(endpoints or {})  # endpoint -> server name

    @classmethod
    def of(cls, link: AmiGroup | AmiClient) -> AmiGroup:
        """A group as given, or one holding the single client given."""
        return link if isinstance(link, AmiGroup) else cls({DEFAULT_SERVER: link})

    @property
    def clients(self) -> Mapping[str, AmiClient]:
        return self._clients

    def link(self, endpoint: str) -> AmiClient:
        """The link to the server where `endpoint` (an agent's or supervisor's phone) lives;
        the default server for a phone the settings do not place."""
        return self._clients[self._server_of.get(endpoint, self._default)]

    @property
    def connected(self) -> bool:
        return all(c.connected for c in self._clients.values())

    @property
    def reconnects_total(self) -> int:
        return sum(c.reconnects_total for c in self._clients.values())

    @property
    def events_total(self) -> int:
        return sum(c.events_total for c in self._clients.values())

    def describe(self) -> str:
        return ", ".join(
            f"{name + '=' if name else ''}{c.host}:{c.port}" for name, c in self._clients.items()
        )

    def subscribe(self, event_name: str, callback: EventCallback) -> Callable[[], None]:
        unsubscribes = [c.subscribe(event_name, callback) for c in self._clients.values()]

        def unsubscribe() -> None:
            for undo in unsubscribes:
                undo()

        return unsubscribe

    async def action_list(self, name: str, /, *, timeout_s: float | None = None) -> AmiEventList:
        """One list action on every server, the items merged (the first server's response and
        completion stand for all); an error from any server raises as the client raises."""
        results = [await c.action_list(name, timeout_s=timeout_s) for c in self._clients.values()]
        return AmiEventList(
            response=results[0].response,
            events=tuple(e for r in results for e in r.events),
            complete=results[0].complete,
        )

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
