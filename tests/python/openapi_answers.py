"""Checks live answers of a Cailloux node against its OpenAPI document.

Usage: openapi_answers.py OPENAPI_JSON ANSWERS_JSON

ANSWERS_JSON is a list of {"what", "path", "method", "status", "value"}: "path" is the
document's path template (/api/v1/records/{id}), "value" the JSON answer. The document itself
must be a valid OpenAPI 3.1 document; each answer must validate against the schema of its
response (JSON Schema 2020-12), whose objects admit no property they do not describe. Prints
every failure with where in the answer it is; exits 1 when any.
"""

import json
import sys

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def shorten(text, at=240):
    return text if len(text) <= at else text[:at] + "…"


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    with open(argv[2], encoding="utf-8") as f:
        answers = json.load(f)
    validate_spec(doc)
    registry = Registry().with_resource(
        "urn:cailloux:openapi", Resource(contents=doc, specification=DRAFT202012)
    )
    failures = 0
    for answer in answers:
        path, method, status = answer["path"], answer["method"], str(answer["status"])
        try:
            response = doc["paths"][path][method]["responses"][status]
        except KeyError:
            print(f"{answer['what']}: the document has no response {status} for {method.upper()} {path}")
            failures += 1
            continue
        if "$ref" in response:
            response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            print(f"{answer['what']}: response {status} of {method.upper()} {path} describes no JSON")
            failures += 1
            continue
        # The document's own references are relative to it.
        schema = json.loads(json.dumps(schema).replace('"#/', '"urn:cailloux:openapi#/'))
        validator = Draft202012Validator(schema, registry=registry)
        errors = sorted(validator.iter_errors(answer["value"]), key=lambda e: list(e.absolute_path))
        for e in errors:
            # Under a oneOf, the alternative that came nearest says what is wrong.
            while e.context:
                e = best_match(e.context)
            where = "/".join(str(p) for p in e.absolute_path) or "(the answer)"
            print(f"{answer['what']}: at {where}: {shorten(e.message)}")
            failures += 1
    print(f"{len(answers)} answer(s) checked, {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
