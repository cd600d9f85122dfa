"""What the test peers share: events on stdout, timestamps, the official schemas, the upgrade."""

import base64
import datetime
import json
import os

import jsonschema
import websockets


def say(event, **fields):
    """One event, one JSON line on stdout, for the test to read."""
    print(json.dumps({"event": event, **fields}), flush=True)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def schema_refuses(package, filename, validator, payload):
    """Whether the schema `filename` the `ocpp` package ships for a version refuses `payload`."""
    with open(os.path.join(os.path.dirname(package.__file__), "schemas", filename)) as file:
        schema = json.load(file)
    try:
        jsonschema.validate(payload, schema, cls=validator)
        return False
    except jsonschema.ValidationError:
        return True


def connect(url, charger_id, password, subprotocols):
    """The charger's WebSocket to voltbus's OCPP door, HTTP Basic with its id and password."""
    token = base64.b64encode(f"{charger_id}:{password}".encode()).decode()
    return websockets.connect(
        f"{url}/{charger_id}", subprotocols=subprotocols, additional_headers={"Authorization": f"Basic {token}"}
    )


async def run(socket, charger, violations):
    """Boots `charger` and serves it until it stopped; or sends `violations(socket)` instead."""
    say("connected", subprotocol=socket.subprotocol)
    if violations is not None:
        await violations(socket)
        return
    import asyncio

    listening = asyncio.create_task(charger.start())
    await charger.boot()
    await charger.stopped.wait()
    say("done", meterStop=charger.wh)
    listening.cancel()
