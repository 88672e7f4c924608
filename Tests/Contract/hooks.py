"""Schemathesis hooks for the contract fuzzing (Tests/IntegrationTests/ContractFuzzTests.swift runs `st run` with them).

- Uploads with a positively generated form send a real scan (Tests/Artifacts/reference/scans) as `image`, DICOM
  field reads a real DICOM file (Tests/Fuzz/corpus/dicom), and STOW-RS a multipart/related body of two of those files,
  so the 201 / 200 paths run the models and the decoder; negatively generated bodies keep whatever schemathesis made.
- The run's own identity is never the target of a destructive call: a path that names one of the ids in
  MEDISCOPE_FUZZ_PROTECTED_IDS (the caller's user id and token id) names a user or token that does not exist instead,
  so revoking its own token, disabling or demoting itself cannot end the run early.
"""
import os
import pathlib
import random

import schemathesis
from schemathesis.core.parameters import ParameterLocation

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCANS = sorted((ROOT / "Tests/Artifacts/reference/scans").glob("*.jpg")) + sorted((ROOT / "Tests/Artifacts/reference/scans").glob("*.png"))
# Well-formed files of several transfer syntaxes (not the hostile ones, which the DICOM fuzzing covers).
DICOMS = sorted(p for p in (ROOT / "Tests/Fuzz/corpus/dicom").glob("*.dcm") if not p.name.startswith("hostile"))
PROTECTED = {v for v in os.environ.get("MEDISCOPE_FUZZ_PROTECTED_IDS", "").split(",") if v}
# An id of the right shape that names nothing: the call is a 404 and changes nothing.
NOBODY = "0" * 26
_random = random.Random(int(os.environ.get("MEDISCOPE_FUZZ_SEED", "1")))

# The upload's `image` part may be a DICOM file (its encoding lists application/dicom): its bytes are sent as they are.
schemathesis.serializer.alias("application/dicom", "application/octet-stream")
# A STOW-RS body is bytes: positively generated ones become a real multipart/related study (see before_call).
schemathesis.serializer.alias("multipart/related", "application/octet-stream")
STOW_BOUNDARY = "mediscope-contract-stow"


def _related(files) -> bytes:
    body = b"".join(b"--" + STOW_BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + f.read_bytes() + b"\r\n" for f in files)
    return body + b"--" + STOW_BOUNDARY.encode() + b"--\r\n"


def _positive_body(case) -> bool:
    meta = case.meta
    return isinstance(case.body, dict) and (meta is None or not meta.is_negative_at(ParameterLocation.BODY))


@schemathesis.hook
def before_call(context, case, kwargs):
    operation = context.operation
    if operation is None:
        return
    method, path = operation.method.upper(), operation.path
    if method == "POST" and path == "/api/analyses" and _positive_body(case) and SCANS:
        case.body["image"] = _random.choice(SCANS).read_bytes()
    elif method == "POST" and path == "/api/dicom/fields" and _positive_body(case) and DICOMS:
        case.body["file"] = _random.choice(DICOMS).read_bytes()
    elif method == "POST" and path.startswith("/dicom-web/studies") and DICOMS and (case.meta is None or not case.meta.is_negative_at(ParameterLocation.BODY)):
        case.body = _related(_random.sample(DICOMS, min(2, len(DICOMS))))
        case.headers = {**(case.headers or {}), "Content-Type": f'multipart/related; type="application/dicom"; boundary={STOW_BOUNDARY}'}
    if method != "GET" and case.path_parameters:
        for name, value in list(case.path_parameters.items()):
            if str(value) in PROTECTED:
                case.path_parameters[name] = NOBODY


# Known server issues outside this suite's files, each reported: failures they cause are dropped (the summary counts
# them as "dropped by filter_failure"), every other failure fails the run.
KNOWN_ISSUES: list = []  # none now; the dotted report path was fixed in the nginx snippet


@schemathesis.hook
def filter_failure(context, failure, case, response):
    return not any(known(case, response) for known in KNOWN_ISSUES)
