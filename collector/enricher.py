"""Which history server knows an ended application, and asking it (I/O)."""

from __future__ import annotations

from .enrichment import Outcome, Pending, not_applicable, not_yet, unavailable
from .jhs_client import JobHistory
from .shs_client import SparkHistory


class Enricher:
    def __init__(self, jobhistory: JobHistory | None, spark_history: SparkHistory | None) -> None:
        self.jobhistory = jobhistory
        self.spark_history = spark_history

    async def attempt(self, p: Pending) -> Outcome:
        if not p.rm_final:
            return not_yet("the ResourceManager still shows running containers: its usage figures are not final")
        kind = (p.app_type or "").upper()
        server: JobHistory | SparkHistory | None
        if kind == "MAPREDUCE":
            server, name = self.jobhistory, "JobHistory Server"
        elif kind == "SPARK":
            server, name = self.spark_history, "Spark History Server"
        else:
            return not_applicable(f"application type {p.app_type or '(none)'} has no history server to ask")
        if server is None:
            return unavailable(f"not configured: no {name} URL for this cluster")
        if p.launched is False:
            # launchTime 0 after the end: no ApplicationMaster ran, so no history was written.
            return unavailable(f"the ApplicationMaster never started: the {name} has no record of it")
        return await server.figures(p.app_id)
