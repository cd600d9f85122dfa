"""Checks every example of an OpenAPI 3.1 document against its own schema with the `jsonschema`
package (JSON Schema 2020-12, formats asserted): each operation's request body, answers and
parameters, and the shared error answers. Prints each mismatch and exits 1 if there is one; else
prints how many examples it checked and which operations lack a request or answer example.

    openapi_examples.py DOCUMENT.json
"""

import json
import sys

from jsonschema import Draft202012Validator

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def main(path):
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    components = document.get("components", {})
    failures, checked, missing = [], 0, []

    def check(where, media):
        nonlocal checked
        if "example" not in media:
            return False
        # References are `#/components/…`: the schema is checked as the root beside them.
        schema = dict(media.get("schema", {}), components=components)
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for error in validator.iter_errors(media["example"]):
            failures.append(f"{where}: {error.message} at {list(error.absolute_path)}")
        checked += 1
        return True

    for path_name, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path_name} ({operation.get('operationId')})"
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and not check(f"{where} request", body):
                missing.append(f"{where} request")
            answered = False
            for status, response in operation.get("responses", {}).items():
                media = response.get("content", {}).get("application/json")
                if media is not None:
                    answered |= check(f"{where} {status}", media)
                elif "$ref" in response or "content" in response:
                    answered |= status.startswith("2") and "$ref" not in response
            if not answered:
                missing.append(f"{where} answer")
            for parameter in operation.get("parameters", []):
                check(f"{where} parameter {parameter.get('name')}", parameter)
    for name, response in components.get("responses", {}).items():
        for media in response.get("content", {}).values():
            check(f"components/responses/{name}", media)

    for failure in failures:
        print(failure)
    for lack in missing:
        print(f"no example: {lack}")
    print(f"{checked} examples checked, {len(failures)} mismatches, {len(missing)} operations without an example")
    return 1 if failures or missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
