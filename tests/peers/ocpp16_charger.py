"""An OCPP 1.6J charge point of the `ocpp` package (PyPI), driven by voltbus's tests.

    ocpp16_charger.py URL CHARGER_ID PASSWORD journey
        Boots, reports Available, and charges when voltbus sends RemoteStartTransaction
        (Authorize, StartTransaction, status Charging, MeterValues every second, 1 kWh a reading)
        until RemoteStopTransaction (StopTransaction, Finishing, Available). Exits once stopped.

    ocpp16_charger.py URL CHARGER_ID PASSWORD violations
        Boots, then sends frames off the 1.6 schemas and prints, for each, the CALLERROR voltbus
        answered and whether the official schema (shipped in the `ocpp` package) refuses the
        payload too.

Each event is one JSON line on stdout, for the test to read.
"""

import asyncio
import json
import sys

import jsonschema
import ocpp.v16
import peer
from ocpp.routing import after, on
from peer import connect, now, say
from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    Action,
    ChargePointErrorCode,
    ChargePointStatus,
    ConfigurationStatus,
    RemoteStartStopStatus,
)

class Charger(ocpp.v16.ChargePoint):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tag = None
        self.transaction = None
        self.wh = 10_000
        self.stopped = asyncio.Event()
        self.charging = None

    async def status(self, status):
        await self.call(
            call.StatusNotification(
                connector_id=1,
                error_code=ChargePointErrorCode.no_error,
                status=status,
                timestamp=now(),
            ),
            suppress=False,
        )

    @on(Action.change_configuration)
    def on_change_configuration(self, key, value, **_):
        say("ChangeConfiguration", key=key, value=value)
        return call_result.ChangeConfiguration(status=ConfigurationStatus.accepted)

    @on(Action.reset)
    def on_reset(self, type, **_):
        say("Reset", type=type)
        return call_result.Reset(status="Accepted")

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag, **_):
        self.tag = id_tag
        say("RemoteStartTransaction", idTag=id_tag)
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    @after(Action.remote_start_transaction)
    async def start_charging(self, id_tag, **_):
        # After our answer is sent: a CALL from inside the handler would wait on itself.
        self.charging = asyncio.create_task(self.charge(id_tag))

    async def charge(self, id_tag):
        authorized = await self.call(call.Authorize(id_tag=id_tag), suppress=False)
        say("Authorize", status=authorized.id_tag_info["status"])
        await self.status(ChargePointStatus.preparing)
        started = await self.call(
            call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=self.wh, timestamp=now()),
            suppress=False,
        )
        self.transaction = started.transaction_id
        say("StartTransaction", transactionId=started.transaction_id, status=started.id_tag_info["status"])
        await self.status(ChargePointStatus.charging)
        while True:
            await asyncio.sleep(1)
            self.wh += 1000
            sample = {
                "timestamp": now(),
                "sampledValue": [
                    {"value": str(self.wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": "22000", "measurand": "Power.Active.Import", "unit": "W"},
                ],
            }
            await self.call(
                call.MeterValues(connector_id=1, transaction_id=self.transaction, meter_value=[sample]),
                suppress=False,
            )

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id, **_):
        say("RemoteStopTransaction", transactionId=transaction_id)
        return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.accepted)

    @after(Action.remote_stop_transaction)
    async def stop_charging(self, transaction_id, **_):
        asyncio.create_task(self.stop(transaction_id))

    async def stop(self, transaction_id):
        if self.charging:
            self.charging.cancel()
        await self.call(
            call.StopTransaction(meter_stop=self.wh, timestamp=now(), transaction_id=transaction_id, reason="Remote"),
            suppress=False,
        )
        say("StopTransaction", meterStop=self.wh)
        await self.status(ChargePointStatus.finishing)
        await self.status(ChargePointStatus.available)
        self.stopped.set()

    async def boot(self):
        booted = await self.call(
            call.BootNotification(charge_point_model="VB-Test", charge_point_vendor="voltbus"), suppress=False
        )
        say("BootNotification", status=booted.status, interval=booted.interval)
        beat = await self.call(call.Heartbeat(), suppress=False)
        say("Heartbeat", currentTime=beat.current_time)
        await self.status(ChargePointStatus.available)
        say("Available")

def schema_refuses(action, payload):
    return peer.schema_refuses(ocpp.v16, f"{action}.json", jsonschema.Draft4Validator, payload)

VIOLATIONS = [
    # (what, action, payload): each payload breaks the official 1.6 schema.
    ("missing", "StatusNotification", {"connectorId": 1, "status": "Available"}),
    ("type", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Available"}),
    ("enum", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Exploded"}),
    ("unknown-field", "Heartbeat", {"extra": 1}),
    ("too-long", "Authorize", {"idTag": "x" * 21}),
    ("type", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 5}]}]}),
    ("enum", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "5", "unit": "parsec"}]}]}),
    ("missing", "StartTransaction", {"connectorId": 1, "idTag": "abc", "timestamp": "2026-01-01T00:00:00Z"}),
]

async def violations(socket):
    for index, (what, action, payload) in enumerate(VIOLATIONS):
        message_id = f"bad-{index}"
        await socket.send(json.dumps([2, message_id, action, payload]))
        answer = json.loads(await socket.recv())
        say("violation", what=what, action=action, answer=answer, schemaRefuses=schema_refuses(action, payload))
    for raw in ['{"not": "a frame"}', "not json", '[2, "short", "Heartbeat"]', '[2, "x", "Teleport", {}]']:
        await socket.send(raw)
        say("frame", sent=raw, answer=json.loads(await socket.recv()))
    # Still served after all that.
    await socket.send(json.dumps([2, "alive", "Heartbeat", {}]))
    say("alive", answer=json.loads(await socket.recv()))

async def main():
    url, charger_id, password, mode = sys.argv[1:5]
    async with connect(url, charger_id, password, ["ocpp1.6"]) as socket:
        charger = Charger(charger_id, socket)
        await peer.run(socket, charger, violations if mode == "violations" else None)

asyncio.run(main())
