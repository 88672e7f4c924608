"""Validates a FHIR DiagnosticReport (JSON on standard input) against the R4B structure definitions of
fhir.resources: the report and each contained resource parsed by its own model (cardinalities, types,
the invariants its models check). What those models leave unchecked is checked here from the R4 specification:
the codes of the required bindings Mediscope uses, no empty or null values (JSON representation rules),
resource ids, the XHTML narrative's root, and that contained resources are referenced and every local
reference resolves (dom-3). Prints "ok" and exits 0, or prints the errors and exits 1. Never prints the
resource itself (it holds patient data)."""
import json
import re
import sys

from fhir.resources.R4B import get_fhir_model_class

# Required bindings (FHIR R4 value sets), by (resourceType, element path).
REQUIRED = {
    ("DiagnosticReport", "status"): {"registered", "partial", "preliminary", "final", "amended", "corrected", "appended",
                                     "cancelled", "entered-in-error", "unknown"},
    ("Observation", "status"): {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                                "entered-in-error", "unknown"},
    ("ImagingStudy", "status"): {"registered", "available", "cancelled", "entered-in-error", "unknown"},
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("Device", "deviceName.type"): {"udi-label-name", "user-friendly-name", "patient-reported-name", "manufacturer-name",
                                    "model-name", "other"},
    ("DiagnosticReport", "text.status"): {"generated", "extensions", "additional", "empty"},
}
ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def values(node, path):
    """The values at a dotted path, through lists."""
    nodes = [node]
    for key in path.split("."):
        nxt = []
        for n in nodes:
            v = n.get(key) if isinstance(n, dict) else None
            nxt.extend(v if isinstance(v, list) else [] if v is None else [v])
        nodes = nxt
    return nodes


def empties(node, where):
    """Paths of empty objects, arrays, strings and nulls (not allowed in FHIR JSON)."""
    if node is None or node == "" or node == [] or node == {}:
        return [where]
    if isinstance(node, dict):
        return [e for k, v in node.items() for e in empties(v, f"{where}.{k}")]
    if isinstance(node, list):
        return [e for i, v in enumerate(node) for e in empties(v, f"{where}[{i}]")]
    return []


def references(node):
    if isinstance(node, dict):
        out = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return out + [r for v in node.values() for r in references(v)]
    if isinstance(node, list):
        return [r for v in node for r in references(v)]
    return []


def spec_checks(document):
    errors = empties(document, document.get("resourceType", "?"))
    contained = document.get("contained", [])
    for resource in [document] + contained:
        kind = resource.get("resourceType")
        for (rtype, path), allowed in REQUIRED.items():
            if rtype == kind:
                errors += [f"{kind}.{path}: {v!r} is not in its required value set" for v in values(resource, path) if v not in allowed]
        if "id" in resource and not ID.fullmatch(str(resource["id"])):
            errors.append(f"{kind}.id {resource['id']!r} is not a FHIR id")
    div = document.get("text", {}).get("div")
    if div is not None and not div.startswith('<div xmlns="http://www.w3.org/1999/xhtml">'):
        errors.append("text.div is not an XHTML div")
    local = {"#" + r.get("id", "") for r in contained}
    referenced = set(references(document))
    errors += [f"reference {r} names no contained resource" for r in sorted(referenced) if r.startswith("#") and r not in local]
    errors += [f"contained {r} is referenced from nowhere (dom-3)" for r in sorted(local - referenced)]
    return errors


def main() -> int:
    raw = sys.stdin.read()
    document = json.loads(raw)
    errors = []
    try:
        get_fhir_model_class(document.get("resourceType", "")).model_validate_json(raw)
    except Exception as e:  # pydantic's ValidationError, or an unknown resourceType
        errors.append(f"{document.get('resourceType')}: {e}")
    for resource in document.get("contained", []):
        try:
            get_fhir_model_class(resource.get("resourceType", "")).model_validate(resource)
        except Exception as e:
            errors.append(f"contained {resource.get('resourceType')}/{resource.get('id')}: {e}")
    errors += spec_checks(document)
    if errors:
        print("\n".join(errors))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
