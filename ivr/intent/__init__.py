"""Intent prediction: why is this caller calling (see `model.py` for how it decides).

`from ivr.intent import IntentModel, Signals, Prediction, INTENTS, MENU, tokens` is the API the
call flows use; the modules beside this one are its parts.
"""

from ivr.intent.dataset import Example, load
from ivr.intent.features import fold, tokens
from ivr.intent.labels import INTENTS, MENU
from ivr.intent.model import CONFIRM, CONFIRM_BELOW, ROUTE, IntentModel, Prediction, Signals

__all__ = [
    "CONFIRM",
    "CONFIRM_BELOW",
    "INTENTS",
    "MENU",
    "ROUTE",
    "Example",
    "IntentModel",
    "Prediction",
    "Signals",
    "fold",
    "load",
    "tokens",
]
