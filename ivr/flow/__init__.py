"""Call flows as data: documents (TOML tables) of named steps, validated at load, interpreted
over the `Channel` and `InboundServices` ports.

- `models`: the step types and the flow.
- `document`: a flow's document → `Flow`, with errors naming the flow and the step.
- `check`: what needs the rest of the configuration (queues, intents, hooks, prompts on disk).
- `engine`: runs a flow for one call.
- `hours`, `say`: business hours and holidays; numbers, amounts and dates per language.
- `hooks`: Python conditions and self-service actions, registered by name.
- `default`: today's flow, as the `default` flow.
"""
