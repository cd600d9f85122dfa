"""A telematics unit speaking MQTT 3.1.1 (paho-mqtt, PyPI) to NATS's MQTT listener, driven by
voltbus's tests.

    mqtt_vehicle.py HOST PORT PASSWORD TENANT VEHICLE OTHER_VEHICLE

Connects with its credentials (the NATS user JWT as the password), subscribes to its own command
topic and to another vehicle's, publishes its state (QoS 1) on its own topic and on the other
vehicle's, then prints every command that reaches it and answers it (QoS 1, `succeeded`) on its own
command-results topic, until stdin closes. Each event is one JSON line on stdout.
"""

import datetime
import json
import sys
import threading

import paho.mqtt.client as mqtt
from peer import say


def main():
    host, port, password, tenant, vehicle, other = sys.argv[1:7]
    mine = f"voltbus/{tenant}/vehicles/{vehicle}"
    theirs = f"voltbus/{tenant}/vehicles/{other}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"unit-{vehicle}", protocol=mqtt.MQTTv311)
    client.username_pw_set("unit", password)
    connected = threading.Event()
    subscriptions = {}
    # The SUBACK may come back (on the network thread) before `subscribe` returns its mid: the
    # mid is recorded under this lock, which the callback waits for.
    recording = threading.Lock()

    def on_connect(_client, _data, _flags, code, _props):
        say("connected", code=str(code))
        connected.set()

    def on_subscribe(_client, _data, mid, codes, _props):
        with recording:
            topic = subscriptions.get(mid)
        say("subscribed", topic=topic, granted=not codes[0].is_failure)

    def on_publish(_client, _data, mid, code, _props):
        say("puback", mid=mid)

    def on_message(client, _data, message):
        command = json.loads(message.payload)
        say("command", topic=message.topic, body=command)
        answer = {"command_id": command["command_id"], "outcome": "succeeded"}
        client.publish(f"{mine}/command-results", json.dumps(answer), qos=1)

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_publish, client.on_message = on_publish, on_message
    client.connect(host, int(port))
    client.loop_start()
    connected.wait(10)
    for topic in (f"{mine}/commands", f"{theirs}/commands"):
        with recording:
            _, mid = client.subscribe(topic, qos=0)
            subscriptions[mid] = topic
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    state = {"charge_level": {"value": 64, "time": now}}
    own = client.publish(f"{mine}/state", json.dumps(state), qos=1)
    own.wait_for_publish(10)
    say("published", topic=f"{mine}/state", mid=own.mid)
    # The same report again, as a unit resends what it is not sure went through.
    client.publish(f"{mine}/state", json.dumps(state), qos=1).wait_for_publish(10)
    forged = {"charge_level": {"value": 1, "time": now}}
    client.publish(f"{theirs}/state", json.dumps(forged), qos=1).wait_for_publish(10)
    say("published", topic=f"{theirs}/state")
    sys.stdin.read()
    client.loop_stop()


main()
