"""A WhatsApp contact is looked up in a backend by its phone number: the `wa_id` (digits, no
`+`) becomes E.164 for `{phone}` templates."""

from __future__ import annotations

import numpy as np

from centralino.adapters.http_client import HttpClient
from centralino.adapters.http_connector import HttpConnector
from centralino.demo.erp import DATASET, erp_backend_config, make_erp_app
from context.identity import normalise_whatsapp_id
from context.models import ConnectorQuery
from tests.context.fakes import FakeClock
from tests.demo.serve import serve


async def test_given_a_whatsapp_id_then_the_backend_is_asked_by_its_e164_phone(
    http_client: HttpClient,
) -> None:
    app = make_erp_app(latency_ms=0.0, failure_rate=0.0, rng=np.random.default_rng(1))
    phone = app[DATASET].people[0].phone
    assert phone.startswith("+")
    wa = normalise_whatsapp_id(phone + "@s.whatsapp.net")
    assert wa.value == phone[1:]  # stored and looked up without the +
    async with serve(app) as url:
        conn = HttpConnector(config=erp_backend_config(url), client=http_client, clock=FakeClock())
        facts = await conn.fetch(ConnectorQuery(identity=wa))
    assert any(f.kind == "erp_customer" for f in facts)
