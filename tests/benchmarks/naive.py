"""The reference of benchmark 2: a collector written the way most scripts do it. Standard
``json``, dicts all the way, the whole list every poll, a dict-by-dict comparison with the
previous poll and ``json.dumps`` of each event. Deliberately plain, not deliberately slow."""

from __future__ import annotations

import json
import time
import uuid


class NaiveCollector:
    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.previous: dict[str, dict] = {}

    def process(self, body: bytes) -> list[bytes]:
        """One poll's answer in, the encoded events of what changed out."""
        apps = (json.loads(body).get("apps") or {}).get("app") or []
        current = {app["id"]: app for app in apps}
        events = []
        for app_id, app in current.items():
            before = self.previous.get(app_id)
            if before is None or before["state"] != app["state"]:
                events.append(json.dumps({
                    "id": str(uuid.uuid4()),
                    "source": f"hadoop://{self.cluster}/yarn",
                    "type": "yarn.application.state_changed",
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "subject": app_id,
                    "data": {"previous_state": before["state"] if before else None, "application": app},
                }).encode())
        self.previous = current
        return events
