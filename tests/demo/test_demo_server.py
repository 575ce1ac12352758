"""The sandbox's HTTP server, admin endpoints, CLI and the in-process transport's streaming."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys

import httpx
import pytest

from bot.demo.dataset import DEFAULT_MERGE_POLICY_ID, DEMO_CLIENT_ID, load_dataset
from bot.demo.server import environment_line, main, start_server
from bot.demo.simulator import AepSimulator
from bot.demo.transport import in_process_transport

AUDIENCE_ID = load_dataset().audiences[0]["id"]
TOKEN_FORM = {
    "grant_type": "client_credentials",
    "client_id": DEMO_CLIENT_ID,
    "client_secret": "demo-client-secret",
    "scope": "openid",
}


async def _headers(client: httpx.AsyncClient) -> dict[str, str]:
    token = (await client.post("/ims/token/v3", data=TOKEN_FORM)).json()["access_token"]
    return {
        "Authorization": f"Bearer {token}",
        "x-api-key": DEMO_CLIENT_ID,
        "x-gw-ims-org-id": "DEMO0000000000000000000@AdobeOrg",
        "x-sandbox-name": "prod",
    }


async def test_admin_endpoints_set_faults_report_stats_and_reset(sim: AepSimulator) -> None:
    async with (
        await start_server(sim) as server,
        httpx.AsyncClient(base_url=server.url, verify=False) as client,
    ):
        headers = await _headers(client)
        settings = {"latency_ms": 5, "add": {"kind": "429", "endpoint": "audiences", "count": 1}}
        answer = await client.post("/__demo/faults", json=settings)
        assert answer.json() == {"latency_ms": 5, "endpoint_latency_ms": {}, "pending": 1}
        assert (
            await client.get(f"/data/core/ups/audiences/{AUDIENCE_ID}", headers=headers)
        ).status_code == 429
        assert (
            await client.get(f"/data/core/ups/audiences/{AUDIENCE_ID}", headers=headers)
        ).status_code == 200
        await client.get("/data/core/ups/audiences", headers={})

        stats = (await client.get("/__demo/stats")).json()
        assert stats == {
            "token": 1,
            "audiences": 3,
            "rejected": 1,
            "max_in_flight": 1,
            "flood_sent": 0,
        }

        assert (await client.post("/__demo/reset")).status_code == 200
        assert (await client.get("/__demo/stats")).json() == {"max_in_flight": 0, "flood_sent": 0}
        assert sim.faults.latency_ms == 0 and sim.faults.pending == 0


@pytest.mark.parametrize(
    "settings",
    [
        {"add": {"kind": "explode"}},
        {"add": {"kind": "429", "endpoint": "nowhere"}},
        {"latency_ms": -1},
        {"latency_ms": 5, "add": [{"kind": "429"}, {"kind": "explode"}]},
        [1],
    ],
)
async def test_admin_faults_rejects_bad_settings(sim: AepSimulator, settings: object) -> None:
    async with (
        await start_server(sim) as server,
        httpx.AsyncClient(base_url=server.url, verify=False) as client,
    ):
        answer = await client.post("/__demo/faults", json=settings)
    assert answer.status_code == 400
    assert answer.json()["error"]
    assert sim.faults.pending == 0
    assert sim.faults.latency_ms == 0


async def test_a_slow_drip_trips_the_clients_read_timeout(sim: AepSimulator) -> None:
    sim.faults.add("drip", endpoint="audiences")
    async with (
        await start_server(sim, drip_interval=0.2) as server,
        httpx.AsyncClient(
            base_url=server.url, verify=False, timeout=httpx.Timeout(5, read=0.05)
        ) as client,
    ):
        headers = await _headers(client)
        async with client.stream(
            "GET", f"/data/core/ups/audiences/{AUDIENCE_ID}", headers=headers
        ) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                await response.aread()


async def test_close_ends_requests_held_by_a_hang_fault(sim: AepSimulator) -> None:
    sim.faults.add("hang")
    server = await start_server(sim)
    async with httpx.AsyncClient(base_url=server.url, verify=False, timeout=30) as client:
        pending = asyncio.create_task(client.post("/ims/token/v3", data=TOKEN_FORM))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pending), 0.05)
        assert sim.stats["token"] == 1  # the request reached the simulator and is held there
        async with asyncio.timeout(5):
            await server.close()
            with pytest.raises(httpx.HTTPError):
                response = await pending
                response.raise_for_status()


async def test_in_process_drip_streams_the_body_one_byte_at_a_time(sim: AepSimulator) -> None:
    sim.faults.add("drip", endpoint="audiences")
    transport = in_process_transport(sim, drip_interval=0)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo.invalid") as client:
        headers = await _headers(client)
        async with client.stream(
            "GET", f"/data/core/ups/audiences/{AUDIENCE_ID}", headers=headers
        ) as response:
            chunks = [chunk async for chunk in response.aiter_raw()]
    assert all(len(chunk) == 1 for chunk in chunks)
    assert json.loads(b"".join(chunks)) == load_dataset().audiences[0]


def test_environment_line_points_the_bot_at_the_sandbox() -> None:
    line = environment_line("http://127.0.0.1:9999")
    assert "AEP_IMS_URL=http://127.0.0.1:9999" in line.split()
    assert "AEP_API_URL=http://127.0.0.1:9999" in line.split()
    assert f"AEP_MERGE_POLICY_ID={DEFAULT_MERGE_POLICY_ID}" in line.split()
    assert "AEP_SANDBOX=prod" in line.split()


async def test_cli_serves_until_interrupted() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from bot.demo.server import main; sys.exit(main(['--port', '0']))",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode()
        settings = dict(part.split("=", 1) for part in line.split() if "=" in part)
        assert settings["AEP_CLIENT_ID"] == DEMO_CLIENT_ID
        assert settings["AEP_IMS_URL"] == settings["AEP_API_URL"]
        async with httpx.AsyncClient(base_url=settings["AEP_API_URL"], verify=False) as client:
            headers = await _headers(client)
            response = await client.get("/data/core/idnamespace/identities", headers=headers)
        assert response.status_code == 200
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_cli_reports_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["--port", str(taken.getsockname()[1])]) == 1
    assert "Cannot serve" in capsys.readouterr().err


def test_cli_rejects_a_negative_latency() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--latency-ms", "-5"])
    assert exit_info.value.code == 2


async def test_events_can_be_made_slower_than_the_profile() -> None:
    sim = AepSimulator()
    async with await start_server(sim, port=0) as server, httpx.AsyncClient() as http:
        answer = await http.post(
            f"{server.url}/__demo/faults", json={"endpoint_latency_ms": {"events": 600}}
        )
        assert answer.json()["endpoint_latency_ms"] == {"events": 600}
        assert sim.faults.latency_for("events") == 600 and sim.faults.latency_for("profile") == 0
        bad = await http.post(
            f"{server.url}/__demo/faults", json={"endpoint_latency_ms": {"nowhere": 1}}
        )
        assert bad.status_code == 400
        assert sim.faults.latency_for("events") == 600
