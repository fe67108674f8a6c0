"""The checkout flow as a Locust load test, to run against your own deployment:

    .venv/bin/locust -f bench/locustfile.py --host https://gateway.example:8000 \\
        --headless -u 50 -r 10 -t 2m

Each simulated terminal sells to one participant after another: limit query → password check →
hold (with an Idempotency-Key) → commit (80 %) or cancel (20 %). It needs, in the environment:

- CONVENIO_API_KEY: a key with permissions 3183,3184,3185,3186
  (`convenio apikey create --permissions 3183,3184,3185,3186 --name locust`);
- CONVENIO_INTEGRATION_KEY: the integration key the password check carries;
- CONVENIO_PARTICIPANTS: a file of `convenio,participant,password` lines, one per participant
  the test may sell to (test participants: every sale commits real money against their limit).

Amounts are small (R$ 0,01 to R$ 5,00) and integer centavos. Declines (422 INSUFFICIENT_LIMIT)
are counted as successes: they are decisions. The numbers that matter are in Locust's report:
requests/s per endpoint and the latency percentiles.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

from locust import HttpUser, between, task


def _participants() -> list[tuple[str, str, str]]:
    path = os.environ.get("CONVENIO_PARTICIPANTS")
    if not path:
        raise RuntimeError("set CONVENIO_PARTICIPANTS to a file of convenio,participant,password lines")
    rows = [line.strip().split(",") for line in Path(path).read_text().splitlines() if line.strip()]
    return [(c, p, pw) for c, p, pw in rows]


class Terminal(HttpUser):
    wait_time = between(0.1, 0.5)  # a cashier between two sales

    def on_start(self) -> None:
        self.people = _participants()
        self.client.headers["Authorization"] = f"Bearer {os.environ['CONVENIO_API_KEY']}"
        self.integration_key = os.environ["CONVENIO_INTEGRATION_KEY"]
        self.terminal = f"LOCUST{random.randrange(10_000):04d}"

    @task
    def checkout(self) -> None:
        convenio, participant, password = random.choice(self.people)
        base = f"/v1/convenios/{convenio}/participants/{participant}"
        self.client.get(f"{base}/limit", name="/limit")
        with self.client.post(
            f"{base}/password/verify",
            json={"password": password, "integration_key": self.integration_key},
            name="/password/verify",
            catch_response=True,
        ) as r:
            if r.status_code != 200 or not r.json().get("valid"):
                r.failure(f"password check: {r.status_code} {r.text[:120]}")
                return
            proof = r.json()["proof"]
        sale = uuid.uuid4().hex[:12]
        body = {
            "convenio": convenio,
            "participant": participant,
            "amount": random.randrange(1, 501),
            "terminal": self.terminal,
            "store": "LOCUST",
            "sale": sale,
            "proof": proof,
        }
        with self.client.post(
            "/v1/empenhos",
            json=body,
            headers={"Idempotency-Key": f"{self.terminal}-{sale}"},
            name="/empenhos",
            catch_response=True,
        ) as r:
            if r.status_code == 422:
                r.success()  # a decline is a decision
                return
            if r.status_code != 201:
                r.failure(f"hold: {r.status_code} {r.text[:120]}")
                return
            empenho = r.json()["id"]
        if random.random() < 0.8:
            self.client.post(f"/v1/empenhos/{empenho}/commit", json={"coupon": f"C{sale}"}, name="/commit")
        else:
            self.client.post(f"/v1/empenhos/{empenho}/cancel", json={"reason": "locust"}, name="/cancel")
