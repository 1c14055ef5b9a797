"""Admission as the real API server does it for the project's CRDs (deploy/crds/) and for Secrets.

For a custom resource, in the API server's order:

1. decoding: fields the structural schema does not declare are pruned (unless `x-kubernetes-preserve-unknown-fields`;
   each pruned path is reported, as the server's `Warning: unknown field` headers do), then `default:`s are applied;
2. validation of the OpenAPI v3 schema of the served version (types, enums, patterns, lengths, bounds, required,
   `format: date-time`, `x-kubernetes-list-type: map` keys), and of `metadata.name` / `metadata.namespace`;
3. the `x-kubernetes-validations` CEL rules (with `oldSelf` on an update, for transition rules), evaluated by the
   `cel` package (common-expression-language); skipped, as the server does, when the object has a type error.

A rejection is `Rejected`, carrying the `Status` body the server answers with (422, reason Invalid, one cause per
error, the same field paths and message bodies as `k8s.io/apimachinery/pkg/util/validation/field`).
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import cel
import jsonschema
import yaml

Obj = dict[str, Any]
CRD_DIRECTORY = Path(__file__).resolve().parents[2] / "deploy" / "crds"

# metav1.CauseType values, and the text field.ErrorType prints before the value.
REQUIRED = ("FieldValueRequired", "Required value")
INVALID = ("FieldValueInvalid", "Invalid value")
TYPE_INVALID = ("FieldValueTypeInvalid", "Invalid value")
NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
TOO_LONG = ("FieldValueTooLong", "Too long")
TOO_MANY = ("FieldValueTooMany", "Too many")
DUPLICATE = ("FieldValueDuplicate", "Duplicate value")
_NO_VALUE = object()

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
BLOCKED_RULES = (
    "some validation rules were not checked because the object was invalid; correct the existing errors to "
    "complete validation"
)


@dataclass(frozen=True)
class Cause:
    """One field.Error: `field` as the API prints it, `body` what follows `field: ` in the message."""

    reason: str
    field: str
    body: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.body}"


def cause(kind: tuple[str, str], path: str, value: Any = _NO_VALUE, detail: str = "") -> Cause:
    """field.Error.ErrorBody(): Required / Too long print no value; strings are quoted, numbers and bools bare."""
    reason, text = kind
    if kind not in (REQUIRED, TOO_LONG) and value is not _NO_VALUE:
        text += f": {go_value(value)}"
    if detail:
        text += f": {detail}"
    return Cause(reason, path, text)


def go_value(value: Any) -> str:
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, sort_keys=True)


class Rejected(Exception):
    """A write the API server refuses; `status` is the body it answers with, `code` the HTTP status."""

    def __init__(self, status: Obj) -> None:
        super().__init__(status["message"])
        self.status = status
        self.code = int(status["code"])

    @property
    def causes(self) -> list[Obj]:
        return list((self.status.get("details") or {}).get("causes") or [])


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> Rejected:
    """errors.NewInvalid: 422, reason Invalid, `Kind.group "name" is invalid: <aggregate>`."""
    messages = list(dict.fromkeys(c.message for c in causes))  # utilerrors.Aggregate drops duplicates
    aggregate = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    qualified = f"{kind}.{group}" if group else kind
    return Rejected(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'{qualified} "{name}" is invalid: {aggregate}',
            "reason": "Invalid",
            "details": {
                "name": name,
                "group": group,
                "kind": kind,
                "causes": [{"reason": c.reason, "message": c.body, "field": c.field} for c in causes],
            },
            "code": 422,
        }
    )


@dataclass
class Admitted:
    """What the server stores, and the `unknown field` warnings it answers with."""

    obj: Obj
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CustomResourceDefinition:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    schema: Obj

    def admit(self, obj: Obj, old: Obj | None = None) -> Admitted:
        """Prune, default and validate `obj` (the whole object as it would be stored); raises Rejected."""
        admitted = copy.deepcopy(obj)
        warnings: list[str] = []
        for key in [key for key in admitted if key not in self.schema.get("properties", {})]:
            warnings.append(f'unknown field "{key}"')
            del admitted[key]
        for key, child in self.schema.get("properties", {}).items():
            if key in admitted and key != "metadata":
                admitted[key] = prune_and_default(child, admitted[key], key, warnings)
        causes = metadata_causes(admitted.get("metadata") or {}, self.namespaced)
        schema_causes = list(schema_errors(self.schema, admitted))
        causes += schema_causes
        if any(c.reason == TYPE_INVALID[0] for c in schema_causes):
            causes.append(cause(INVALID, "<nil>", None, BLOCKED_RULES))
        else:
            causes += list(cel_errors(self.schema, admitted, old, ""))
        if causes:
            raise invalid(self.kind, self.group, str((admitted.get("metadata") or {}).get("name", "")), causes)
        return Admitted(admitted, warnings)


@cache
def crds() -> dict[str, CustomResourceDefinition]:
    """Kind -> the CRD in deploy/crds/ that serves it (its served version's schema)."""
    found: dict[str, CustomResourceDefinition] = {}
    for path in sorted(CRD_DIRECTORY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    found[spec["names"]["kind"]] = CustomResourceDefinition(
                        spec["group"],
                        version["name"],
                        spec["names"]["kind"],
                        spec["names"]["plural"],
                        spec["scope"] == "Namespaced",
                        version["schema"]["openAPIV3Schema"],
                    )
    return found


# -- decoding: pruning and defaulting --------------------------------------------------------------------------------


def prune_and_default(schema: Obj, value: Any, path: str, warnings: list[str]) -> Any:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        if properties is not None or not isinstance(additional, dict):
            for key in [key for key in value if key not in (properties or {})]:
                warnings.append(f'unknown field "{path}.{key}"')
                del value[key]
            for key, child in (properties or {}).items():
                if key in value and value[key] is None and not child.get("nullable"):
                    del value[key]  # a null that the schema does not allow is dropped, then defaulted
                if key in value:
                    value[key] = prune_and_default(child, value[key], f"{path}.{key}", warnings)
                elif "default" in child:
                    value[key] = copy.deepcopy(child["default"])
        else:
            for key in value:
                value[key] = prune_and_default(additional, value[key], f"{path}.{key}", warnings)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            prune_and_default(schema["items"], item, f"{path}[{index}]", warnings) for index, item in enumerate(value)
        ]
    return value


# -- the OpenAPI schema ---------------------------------------------------------------------------------------------

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


@_FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


_GO_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}


def _go_type(value: Any) -> str:
    return "null" if value is None else _GO_TYPES.get(type(value), type(value).__name__)


def field_path(parts: Iterator[Any] | Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def schema_errors(schema: Obj, obj: Obj) -> Iterator[Cause]:
    validator = jsonschema.Draft4Validator(schema, format_checker=_FORMATS)
    seen: set[tuple[str, str]] = set()
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        for found in _causes_of(error):
            if (found.field, found.body) not in seen:
                seen.add((found.field, found.body))
                yield found
    yield from list_map_errors(schema, obj, "")


def _causes_of(error: jsonschema.ValidationError) -> Iterator[Cause]:
    path = field_path(error.absolute_path)
    where = f"{path} in body" if path else "body"
    value, keyword, bound = error.instance, error.validator, error.validator_value
    if keyword == "required":
        for name in bound:
            if isinstance(value, dict) and name not in value:
                yield cause(REQUIRED, f"{path}.{name}" if path else name)
    elif keyword == "type":
        actual = _go_type(value)
        yield cause(TYPE_INVALID, path, actual, f'{where} must be of type {bound}: "{actual}"')
    elif keyword == "format":
        yield cause(TYPE_INVALID, path, value, f"{where} must be of type {bound}: {go_value(value)}")
    elif keyword == "enum":
        supported = ", ".join(go_value(option) for option in bound)
        yield cause(NOT_SUPPORTED, path, value, f"supported values: {supported}")
    elif keyword == "pattern":
        yield cause(INVALID, path, value, f"{where} should match '{bound}'")
    elif keyword == "maxLength":
        yield cause(TOO_LONG, path, detail=f"may not be more than {bound} bytes")
    elif keyword in ("maxItems", "maxProperties"):
        yield cause(TOO_MANY, path, len(value), f"must have at most {bound} items")
    elif keyword == "minItems":
        yield cause(INVALID, path, len(value), f"{where} should have at least {bound} items")
    elif keyword == "minProperties":
        yield cause(INVALID, path, len(value), f"{where} should have at least {bound} properties")
    elif keyword == "minLength":
        yield cause(INVALID, path, value, f"{where} should be at least {bound} chars long")
    elif keyword == "maximum":
        yield cause(INVALID, path, value, f"{where} should be less than or equal to {bound}")
    elif keyword == "minimum":
        yield cause(INVALID, path, value, f"{where} should be greater than or equal to {bound}")
    else:
        yield cause(INVALID, path, value, f"{where}: {error.message}")


def list_map_errors(schema: Obj, value: Any, path: str) -> Iterator[Cause]:
    """`x-kubernetes-list-type: map` (keys unique) and `set` (items unique), as structurallisttype checks them."""
    if isinstance(value, dict):
        for key, child in (schema.get("properties") or {}).items():
            if key in value:
                yield from list_map_errors(child, value[key], f"{path}.{key}" if path else key)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key, item in value.items():
                yield from list_map_errors(additional, item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: list[Any] = []
        for index, item in enumerate(value):
            if list_type == "map" and isinstance(item, dict):
                identity: Any = {key: item.get(key) for key in keys if key in item}
            elif list_type == "set":
                identity = item
            else:
                identity = _NO_VALUE
            if identity is not _NO_VALUE and identity in seen:
                yield cause(DUPLICATE, f"{path}[{index}]", identity)
            seen.append(identity)
            yield from list_map_errors(schema["items"], item, f"{path}[{index}]")


# -- CEL ------------------------------------------------------------------------------------------------------------


@cache
def _program(rule: str) -> Any:
    return cel.compile(rule)


def cel_errors(schema: Obj, value: Any, old: Any, path: str) -> Iterator[Cause]:
    """Every `x-kubernetes-validations` rule, at every node that holds a value. `oldSelf` is the value at the same
    place in the stored object (map keys correlate, list items do not: as for atomic lists); a rule that names
    `oldSelf` is a transition rule and runs only when there is an old value."""
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule["rule"]
        transition = "oldSelf" in text
        if transition and old is None:
            continue
        context = {"self": value, "oldSelf": old} if transition else {"self": value}
        try:
            passed = _program(text).execute(context)
        except KeyError as error:
            yield cause(
                INVALID,
                path or "<nil>",
                schema.get("type", ""),
                f"no such key: {error.args[0]} evaluating rule: {text}",
            )
            continue
        except (TypeError, RuntimeError, ValueError) as error:
            detail = f"{error} evaluating rule: {text}"
            yield cause(INVALID, path or "<nil>", schema.get("type", ""), detail)
            continue
        if passed is not True:
            detail = rule.get("message") or f"failed rule: {text}"
            yield cause((rule.get("reason") and _REASONS.get(rule["reason"])) or INVALID, path or "<nil>",
                        schema.get("type", ""), detail)  # fmt: skip
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            if key in properties and key != "metadata":
                child, where = properties[key], f"{path}.{key}" if path else key
            elif isinstance(additional, dict):
                child, where = additional, f"{path}[{key}]"
            else:
                continue
            yield from cel_errors(child, item, old_map.get(key), where)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from cel_errors(schema["items"], item, None, f"{path}[{index}]")


_REASONS = {
    "FieldValueInvalid": INVALID,
    "FieldValueRequired": REQUIRED,
    "FieldValueForbidden": ("FieldValueForbidden", "Forbidden"),
    "FieldValueDuplicate": DUPLICATE,
}


# -- object metadata, and the core kinds the fake serves ---------------------------------------------------------------


def metadata_causes(metadata: Obj, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    name = metadata.get("name")
    if not name:
        causes.append(cause(REQUIRED, "metadata.name", detail="name or generateName is required"))
    elif not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        causes.append(cause(INVALID, "metadata.name", name, SUBDOMAIN_HELP))
    namespace = metadata.get("namespace")
    if namespaced and not namespace:
        causes.append(cause(REQUIRED, "metadata.namespace"))
    elif namespaced and (not isinstance(namespace, str) or len(namespace) > 63 or not DNS1123_LABEL.match(namespace)):
        causes.append(cause(INVALID, "metadata.namespace", namespace, LABEL_HELP))
    return causes


def admit_secret(obj: Obj) -> Admitted:
    """A Secret as the server stores it: `stringData` merged into `data` (base64) and dropped; keys checked."""
    admitted = copy.deepcopy(obj)
    metadata = admitted.get("metadata") or {}
    causes = metadata_causes(metadata, True)
    data = dict(admitted.get("data") or {})
    for key, text in (admitted.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(text).encode()).decode()
    total = 0
    for key, encoded in data.items():
        if not SECRET_KEY.match(key):
            detail = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
            causes.append(cause(INVALID, f"data[{key}]", key, detail))
        try:
            total += len(base64.b64decode(str(encoded), validate=True))
        except ValueError:
            causes.append(cause(INVALID, f"data[{key}]", "<value omitted>", "illegal base64 data"))
    if total > 1024 * 1024:
        causes.append(cause(TOO_LONG, "data", detail="may not be more than 1048576 bytes"))
    if causes:
        raise invalid("Secret", "", str(metadata.get("name", "")), causes)
    if data:
        admitted["data"] = data
    admitted.setdefault("type", "Opaque")
    return Admitted(admitted)
