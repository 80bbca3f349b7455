"""MapReduce JobHistory Server client: a finished job's figures, or why not (yet)."""

from __future__ import annotations

import asyncio

from .enrichment import Outcome, not_yet, ok, unavailable
from .http import HttpPeer, PeerError, Response, json_problem
from .jhs_models import job_id_of, mapreduce_figures, parse_counters, parse_job
from .parsing import ParseError

SERVER = "jobhistory"


class JobHistory:
    def __init__(self, url: str, peer: HttpPeer, *, concurrency: int = 4, include_counters: bool = False) -> None:
        self.url = url.rstrip("/")
        self.peer = peer
        self.include_counters = include_counters
        self._slots = asyncio.Semaphore(concurrency)

    async def figures(self, app_id: str) -> Outcome:
        job_id = job_id_of(app_id)
        job_url = f"{self.url}/ws/v1/history/mapreduce/jobs/{job_id}"
        source = {"server": SERVER, "url": job_url}
        async with self._slots:
            try:
                job_resp = await self.peer.get(job_url)
                if (waiting := _waiting(job_resp, job_id)) is not None:
                    return not_yet(waiting, source)
                job = parse_job(job_resp.body)
                counters_resp = await self.peer.get(job_url + "/counters")
                if (waiting := _waiting(counters_resp, job_id)) is not None:
                    return not_yet(waiting, source)
                counters = parse_counters(counters_resp.body)
            except (PeerError, ParseError) as exc:
                return not_yet(f"JobHistory Server: {exc}", source, trouble=True)
        figures = mapreduce_figures(job, counters, include_counters=self.include_counters)
        if not counters:
            return unavailable(
                f"the JobHistory Server has no counters for {job_id} (job {job.state}: it ended before "
                "any task reported)",
                source,
                mapreduce=figures,
            )
        return ok(source, mapreduce=figures)


def _waiting(resp: Response, job_id: str) -> str | None:
    """Why an answer is not the job yet (404 while the history file is not moved), or None."""
    if resp.status == 404:
        return f"the JobHistory Server does not have {job_id}"
    return json_problem(resp, "JobHistory Server")
