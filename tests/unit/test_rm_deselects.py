"""Apps answers leave out what the collector never reads; an RM that knows fewer deSelects
values than asked (400) is asked again with the one every 3.x RM knows."""

from __future__ import annotations

from collector.http import HttpPeer
from collector.rm_client import DESELECTS, DESELECTS_OLD, ResourceManager
from tests.scripted_rm import ScriptedRM


async def apps_queries(rm: ScriptedRM) -> list[str]:
    return [r for r in rm.requests if r.startswith("/ws/v1/cluster/apps?")]


async def test_every_unread_field_is_deselected(serve):
    rm = await serve(ScriptedRM())
    rm.put("application_1_0001", "RUNNING")
    peer = HttpPeer(timeout=5)
    client = ResourceManager([rm.url], peer, cluster="c")
    page = await client.active_apps()
    await peer.close()
    assert [a.id for a in page.apps] == ["application_1_0001"]
    (query,) = await apps_queries(rm)
    assert "resourceInfo" in DESELECTS and f"deSelects={DESELECTS}" in query.replace("%2C", ",")


async def test_an_rm_without_the_newer_values_is_asked_again_and_remembered(serve):
    rm = await serve(ScriptedRM(deselects_known=("resourceRequests",)))
    rm.put("application_1_0001", "RUNNING")
    rm.put("application_1_0002", "FINISHED", finishedTime=5)
    peer = HttpPeer(timeout=5)
    client = ResourceManager([rm.url], peer, cluster="c")
    assert [a.id for a in (await client.active_apps()).apps] == ["application_1_0001"]
    assert [a.id for a in (await client.ended_apps(0)).apps] == ["application_1_0002"]
    await peer.close()
    asked = [q.replace("%2C", ",").split("deSelects=")[1].split("&")[0] for q in await apps_queries(rm)]
    # first try with every value, then only the old one, which sticks for the next request
    assert asked == [DESELECTS, DESELECTS_OLD, DESELECTS_OLD]
