"""Validates a DCAT-AP catalogue in JSON-LD against SHACL shapes, with pySHACL.

Usage: dcat_validate.py SHAPES_TTL CATALOG_JSONLD

Prints pySHACL's report; exits 0 when the catalogue conforms, 1 when it does not. The
catalogue must carry its own @context: nothing is fetched.
"""

import sys

from pyshacl import validate
from rdflib import Graph


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    data = Graph().parse(argv[2], format="json-ld")
    shapes = Graph().parse(argv[1], format="turtle")
    conforms, _, report = validate(data, shacl_graph=shapes, inference="none")
    print(report)
    print(f"{len(data)} triple(s); conforms: {conforms}")
    return 0 if conforms else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
