"""Spark History Server client: a finished application's figures, or why not (yet)."""

from __future__ import annotations

import asyncio

from .enrichment import Outcome, not_yet, ok
from .http import HttpPeer, PeerError, Response, json_problem
from .parsing import ParseError
from .shs_models import executors_path, final_attempt, parse_app, parse_executors, spark_figures

SERVER = "spark_history"


class SparkHistory:
    def __init__(self, url: str, peer: HttpPeer, *, concurrency: int = 4) -> None:
        self.url = url.rstrip("/")
        self.peer = peer
        self._slots = asyncio.Semaphore(concurrency)

    async def figures(self, app_id: str) -> Outcome:
        app_url = f"{self.url}/api/v1/applications/{app_id}"
        source = {"server": SERVER, "url": app_url}
        async with self._slots:
            try:
                app_resp = await self.peer.get(app_url)
                if (waiting := _waiting(app_resp, app_id)) is not None:
                    return not_yet(waiting, source)
                app = parse_app(app_resp.body)
                attempt = final_attempt(app)
                if attempt is None:
                    return not_yet(f"the Spark History Server lists no attempt of {app_id} yet", source)
                if not attempt.is_final:
                    # Summing a running attempt's executors would publish partial numbers as final.
                    return not_yet(
                        f"attempt {attempt.attemptId or '(client mode)'} of {app_id} is not completed "
                        "in the Spark History Server yet",
                        source,
                    )
                executors_url = self.url + executors_path(app_id, attempt)
                source = {"server": SERVER, "url": executors_url}
                ex_resp = await self.peer.get(executors_url)
                if (waiting := _waiting(ex_resp, app_id)) is not None:
                    return not_yet(waiting, source)
                executors = parse_executors(ex_resp.body)
            except (PeerError, ParseError) as exc:
                return not_yet(f"Spark History Server: {exc}", source, trouble=True)
        return ok(source, spark=spark_figures(app, attempt, executors))


def _waiting(resp: Response, app_id: str) -> str | None:
    # The SHS answers 404 in plain text ("no such app: ...") until it has scanned the log.
    if resp.status == 404:
        return f"the Spark History Server does not have {app_id}"
    return json_problem(resp, "Spark History Server")
