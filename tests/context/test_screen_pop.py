from __future__ import annotations

import json
from datetime import timedelta

from context.models import Fact
from context.screen_pop import SourceRecord, assemble, fact_record
from tests.context.fakes import T0

XSS = "<script>alert(1)</script>"


def test_html_from_a_crm_field_stays_raw_text_in_the_payload() -> None:
    """The payload never escapes or strips: the desktop renders with textContent (lead: the
    page must never use innerHTML for pop fields)."""
    fact = Fact("crm", "note", {"text": XSS}, T0)
    record: SourceRecord = {
        "name": "crm",
        "status": "ok",
        "elapsed_ms": 1.0,
        "error": "",
        "facts": [fact_record(fact)],
    }
    pop = assemble(
        linkedid="L",
        now=T0 + timedelta(seconds=3),
        caller=None,
        sources=[record],
        open_tickets=None,
        last_interactions=None,
        ivr=None,
    )
    assert pop["facts"][0]["data"]["text"] == XSS
    assert json.loads(json.dumps(pop))["facts"][0]["data"]["text"] == XSS
    assert pop["facts"][0]["age_s"] == 3.0


def test_missing_lists_every_source_that_is_not_ok() -> None:
    def rec(name: str, status: str) -> SourceRecord:
        return {"name": name, "status": status, "elapsed_ms": None, "error": "", "facts": []}

    pop = assemble(
        linkedid="L",
        now=T0,
        caller=None,
        sources=[rec("erp", "ok"), rec("crm", "timed_out"), rec("x", "pending")],
        open_tickets=None,
        last_interactions=None,
        ivr=None,
    )
    assert pop["missing"] == ["crm: timed_out", "x: pending"]
    assert not pop["complete"]
