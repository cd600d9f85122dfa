"""A partner's client generated from voltbus's OpenAPI document by `openapi-python-client`
(PyPI), then used as a partner would: a pricing plan, a vehicle and a customer, a wallet credit,
a ride started and ended, the wallet read back. Every call goes through the generated functions
and models; each answer is parsed by the generated models. Prints a JSON summary.

    generated_client.py DOCUMENT.json WORKDIR BASE_URL API_KEY SUBACCOUNT_ID [EDGE_DOCUMENT]

EDGE_DOCUMENT (every front door's, `docs/openapi.yaml`) is generated too, and must be as clean.
"""

import importlib
import json
import os
import subprocess
import sys
import typing
import uuid

PACKAGE = "voltbus_partner_client"


def generate(document, workdir, package=PACKAGE):
    """Runs the generator on the document; its package lands in WORKDIR."""
    output = os.path.join(workdir, package)
    # ruff, which formats the generated code, sits beside this interpreter.
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    command = [os.path.join(os.path.dirname(sys.executable), "openapi-python-client"), "generate",
               "--path", document, "--output-path", output, "--meta", "none", "--overwrite"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    report = done.stdout + done.stderr
    if done.returncode != 0 or "Warning" in report or "Error" in report:
        sys.exit(f"openapi-python-client did not generate cleanly:\n{report}")
    sys.path.insert(0, workdir)
    return importlib.import_module(package)


def call(operation, *args, body=None, **kwargs):
    """Calls a generated operation, its body made through the generated model; the parsed answer."""
    module = importlib.import_module(f"{PACKAGE}.api.default.{operation}")
    if body is not None:
        model = typing.get_type_hints(module.sync_detailed)["body"]
        kwargs["body"] = model.from_dict(body)
    response = module.sync_detailed(*args, **kwargs)
    if response.status_code // 100 != 2 or response.parsed is None:
        sys.exit(f"{operation}: {response.status_code} {response.content!r}")
    return response.parsed.to_dict()


def main(document, workdir, base_url, key, subaccount, edge_document=None):
    if edge_document is not None:
        generate(edge_document, workdir, "voltbus_edge_client")
    package = generate(document, workdir)
    client = package.AuthenticatedClient(base_url=base_url, token=key, prefix="", auth_header_name="X-Partner-Api-Key")
    fleet = subaccount
    with client as c:
        plan = {"currency": "EUR", "unlock_cents": 100, "per_minute_cents": 25}
        call("set_pricing", client=c, body=plan, x_subaccount_id=fleet)
        vehicle = call("add_vehicle", client=c, body={"vin": "GENERATED1"}, x_subaccount_id=fleet)["data"]
        customer = call("create_customer", client=c, body={"name": "Generated Client", "email": "generated@example.com"},
                        x_subaccount_id=fleet)["data"]
        credit = {"action": "credit", "amount_cents": 2_000, "currency": "EUR", "description": "top-up"}
        entry = call("post_wallet_entry", uuid.UUID(customer["id"]), client=c, body=credit, x_subaccount_id=fleet,
                     idempotency_key=f"generated-{customer['id']}")["data"]
        start = {"customer_id": customer["id"], "vehicle_id": vehicle["id"]}
        ride = call("start_ride", client=c, body=start, x_subaccount_id=fleet)["data"]
        end = {"end_latitude": 52.52, "end_longitude": 13.405}
        ended = call("end_ride", uuid.UUID(ride["id"]), client=c, body=end, x_subaccount_id=fleet)["data"]
        wallet = call("get_wallet", uuid.UUID(customer["id"]), client=c, x_subaccount_id=fleet)["data"]
    print(json.dumps({
        "customer_id": customer["id"],
        "credited_cents": entry["amount_cents"],
        "ride_id": ride["id"],
        "ride_status": ended["status"],
        "payment_status": ended["payment_status"],
        "total_cents": ended["pricing"]["total_cents"],
        "balance_cents": wallet["balance_cents"],
    }))


if __name__ == "__main__":
    main(*sys.argv[1:7])
