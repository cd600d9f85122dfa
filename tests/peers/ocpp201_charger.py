"""An OCPP 2.0.1 charging station of the `ocpp` package (PyPI), driven by voltbus's tests.

    ocpp201_charger.py URL CHARGER_ID PASSWORD journey
        Boots, reports Available, and charges when voltbus sends RequestStartTransaction
        (Authorize, TransactionEvent Started, Occupied, TransactionEvent Updated every second with
        1 kWh more, seqNo counting) until RequestStopTransaction (TransactionEvent Ended,
        Available). The Updated of seqNo 2 is sent twice, as a station does that stored it while
        offline and was not sure it went through. Exits once stopped.

    ocpp201_charger.py URL CHARGER_ID PASSWORD violations
        Sends frames off the 2.0.1 schemas and prints, for each, the CALLERROR voltbus answered and
        whether the official schema (shipped in the `ocpp` package) refuses the payload too.

Each event is one JSON line on stdout, for the test to read.
"""

import asyncio
import json
import sys
import uuid

import jsonschema
import ocpp.v201
import peer
from ocpp.routing import after, on
from peer import connect, now, say
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action



class Station(ocpp.v201.ChargePoint):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transaction = str(uuid.uuid4())
        self.seq = 0
        self.wh = 10_000
        self.stopped = asyncio.Event()
        self.charging = None

    def next_seq(self):
        self.seq += 1
        return self.seq - 1

    async def status(self, status):
        await self.call(
            call.StatusNotification(timestamp=now(), connector_status=status, evse_id=1, connector_id=1),
            suppress=False,
        )

    def reading(self):
        return [{"timestamp": now(), "sampledValue": [{"value": self.wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]}]

    async def event(self, event_type, trigger, seq=None, **fields):
        return await self.call(
            call.TransactionEvent(
                event_type=event_type,
                timestamp=now(),
                trigger_reason=trigger,
                seq_no=self.next_seq() if seq is None else seq,
                transaction_info={"transactionId": self.transaction, **fields.pop("info", {})},
                evse={"id": 1, "connectorId": 1},
                **fields,
            ),
            suppress=False,
        )

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data, **_):
        item = set_variable_data[0]
        say("SetVariables", component=item["component"]["name"], variable=item["variable"]["name"], value=item["attribute_value"])
        return call_result.SetVariables(
            set_variable_result=[
                {"attributeStatus": "Accepted", "component": item["component"], "variable": item["variable"]}
            ]
        )

    @on(Action.reset)
    def on_reset(self, type, **_):
        say("Reset", type=type)
        return call_result.Reset(status="Accepted")

    @on(Action.request_start_transaction)
    def on_request_start(self, id_token, remote_start_id, **_):
        say("RequestStartTransaction", idToken=id_token["id_token"], type=id_token["type"], remoteStartId=remote_start_id)
        return call_result.RequestStartTransaction(status="Accepted")

    @after(Action.request_start_transaction)
    async def start_charging(self, id_token, remote_start_id, **_):
        self.charging = asyncio.create_task(self.charge(id_token, remote_start_id))

    async def charge(self, id_token, remote_start_id):
        token = {"idToken": id_token["id_token"], "type": id_token["type"]}
        authorized = await self.call(call.Authorize(id_token=token), suppress=False)
        say("Authorize", status=authorized.id_token_info["status"])
        started = await self.event(
            "Started", "RemoteStart", id_token=token, meter_value=self.reading(),
            info={"chargingState": "Charging", "remoteStartId": remote_start_id},
        )
        say("TransactionEvent", eventType="Started", transactionId=self.transaction, status=started.id_token_info["status"])
        await self.status("Occupied")
        while True:
            await asyncio.sleep(1)
            self.wh += 1000
            seq = self.next_seq()
            updated = call.TransactionEvent(
                event_type="Updated", timestamp=now(), trigger_reason="MeterValuePeriodic", seq_no=seq,
                transaction_info={"transactionId": self.transaction}, meter_value=self.reading(),
            )
            await self.call(updated, suppress=False)
            if seq == 2:
                # Stored while offline and sent again: voltbus takes it once.
                await self.call(updated, suppress=False)
                say("resent", seqNo=seq)

    @on(Action.request_stop_transaction)
    def on_request_stop(self, transaction_id, **_):
        say("RequestStopTransaction", transactionId=transaction_id)
        return call_result.RequestStopTransaction(status="Accepted")

    @after(Action.request_stop_transaction)
    async def stop_charging(self, transaction_id, **_):
        asyncio.create_task(self.stop())

    async def stop(self):
        if self.charging:
            self.charging.cancel()
        await self.event("Ended", "RemoteStop", meter_value=self.reading(), info={"stoppedReason": "Remote"})
        say("TransactionEvent", eventType="Ended", meterStop=self.wh)
        await self.status("Available")
        self.stopped.set()

    async def boot(self):
        booted = await self.call(
            call.BootNotification(charging_station={"model": "VB-Test", "vendorName": "voltbus"}, reason="PowerUp"),
            suppress=False,
        )
        say("BootNotification", status=booted.status, interval=booted.interval)
        beat = await self.call(call.Heartbeat(), suppress=False)
        say("Heartbeat", currentTime=beat.current_time)
        await self.status("Available")
        say("Available")


def schema_refuses(action, payload):
    return peer.schema_refuses(ocpp.v201, f"{action}Request.json", jsonschema.Draft6Validator, payload)


STAMP = "2026-01-01T00:00:00Z"
VIOLATIONS = [
    # (what, action, payload): each payload breaks the official 2.0.1 schema.
    ("missing", "StatusNotification", {"timestamp": STAMP, "connectorStatus": "Available", "evseId": 1}),
    ("type", "StatusNotification", {"timestamp": STAMP, "connectorStatus": "Available", "evseId": "1", "connectorId": 1}),
    ("enum", "StatusNotification", {"timestamp": STAMP, "connectorStatus": "Charging", "evseId": 1, "connectorId": 1}),
    ("unknown-field", "Heartbeat", {"extra": 1}),
    ("too-long", "Authorize", {"idToken": {"idToken": "x" * 37, "type": "Central"}}),
    ("type", "MeterValues", {"evseId": 1, "meterValue": [{"timestamp": STAMP, "sampledValue": [{"value": "5"}]}]}),
    ("missing", "TransactionEvent", {"eventType": "Updated", "timestamp": STAMP, "triggerReason": "Trigger", "transactionInfo": {"transactionId": "t"}}),
]


async def violations(socket):
    for index, (what, action, payload) in enumerate(VIOLATIONS):
        await socket.send(json.dumps([2, f"bad-{index}", action, payload]))
        answer = json.loads(await socket.recv())
        say("violation", what=what, action=action, answer=answer, schemaRefuses=schema_refuses(action, payload))
    await socket.send('[2, "x", "Teleport", {}]')
    say("frame", answer=json.loads(await socket.recv()))
    await socket.send(json.dumps([2, "alive", "Heartbeat", {"customData": {"vendorId": "voltbus", "mood": "fine"}}]))
    say("alive", answer=json.loads(await socket.recv()))


async def main():
    url, charger_id, password, mode = sys.argv[1:5]
    async with connect(url, charger_id, password, ["ocpp2.0.1", "ocpp1.6"]) as socket:
        charger = Station(charger_id, socket)
        await peer.run(socket, charger, violations if mode == "violations" else None)


asyncio.run(main())
