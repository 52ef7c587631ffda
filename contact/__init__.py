"""The interaction's lifecycle, whatever the channel: a state table whose illegal transitions
raise, outcomes as an enum, the rules that turn an intent into a queue request, and
reconciliation as a function of what the queue log, the telephony channels and the live state
say. Pure, behind ports; `centralino/` wires it."""
