#!/usr/bin/env python3
"""Static checks for Eino's CustomResourceDefinitions and example manifests.

Usage:
    check_crds.py [PATH ...]              # default PATH: manifests/examples
    check_crds.py --expect-invalid FILE   # passes only if FILE fails schema validation

What is checked:
  * every CRD in manifests/crds: apiextensions.k8s.io/v1, namespaced, names consistent
    with the file name, every version served, exactly one storage version (the newest),
    and each version's openAPIV3Schema structural in the sense Kubernetes uses;
  * the (group, version, kind) triples served are exactly the ones Eino decodes;
  * every YAML document under PATH validates against the schema of the CRD version
    named by its apiVersion/kind (unknown fields are rejected, as `kubectl apply`
    with strict field validation would);
Cross-document rules (duplicates, references, one split per root) are the Swift
validator's, tested through `eino validate`; this script only checks schemas.

Output: one line per check (`ok PATH: what`), failures as `PATH: message`, and a last
line `crds: N passed, M failed`. Exit status 0 when nothing failed, 1 otherwise.
Needs PyYAML and jsonschema (Debian: python3-yaml, python3-jsonschema).
"""

import argparse
import copy
import os
import re
import sys

import yaml

try:
    import jsonschema
except ImportError:  # pragma: no cover - environment problem, reported plainly
    sys.stderr.write("check_crds.py: the jsonschema module is required "
                     "(Debian package python3-jsonschema)\n")
    sys.exit(2)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRD_DIR = os.path.join(REPO, "manifests", "crds")
DEFAULT_PATHS = [os.path.join(REPO, "manifests", "examples")]

# Exactly what the Swift decoder in Sources/Manifests accepts.
ALPHA_1_TO_4 = ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")
EXPECTED_GVKS = (
    {("split.smi-spec.io", v, "TrafficSplit") for v in ALPHA_1_TO_4}
    | {("specs.smi-spec.io", v, "HTTPRouteGroup") for v in ALPHA_1_TO_4}
    | {("specs.smi-spec.io", v, "TCPRoute") for v in ALPHA_1_TO_4}
    | {("access.smi-spec.io", v, "TrafficTarget") for v in ("v1alpha2", "v1alpha3")}
    | {("mirror.eino.dev", "v1alpha1", "TrafficMirror")}
)

TYPES = {"object", "array", "string", "integer", "number", "boolean"}

# JSONSchemaProps fields a v1 CRD may use (apart from x-kubernetes-* extensions).
SCHEMA_KEYS = {
    "type", "format", "title", "description", "default", "example", "externalDocs",
    "nullable", "enum", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "multipleOf", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "uniqueItems", "maxProperties", "minProperties", "required", "items", "properties",
    "additionalProperties", "allOf", "anyOf", "oneOf", "not",
}
EXTENSION_KEYS = {
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type", "x-kubernetes-validations",
}
# Legal JSON Schema, but refused by the Kubernetes API server in a CRD.
REFUSED_KEYS = {
    "$ref", "$schema", "id", "definitions", "dependencies", "patternProperties",
    "additionalItems", "readOnly", "discriminator", "xml",
}
# Keys a value validation (inside anyOf/allOf/oneOf/not) must not carry.
NOT_IN_JUNCTORS = {"type", "description", "default", "nullable", "additionalProperties"}
LOGICAL = ("allOf", "anyOf", "oneOf")

NUMERIC_KEYS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
STRING_KEYS = {"minLength", "maxLength", "pattern"}
ARRAY_KEYS = {"minItems", "maxItems", "uniqueItems"}
OBJECT_KEYS = {"minProperties", "maxProperties", "required"}

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
KUBE_VERSION = re.compile(r"^v([1-9][0-9]*)(?:(alpha|beta)([1-9][0-9]*))?$")
PRINTER_TYPES = {"integer", "number", "string", "boolean", "date"}


# --------------------------------------------------------------------- output


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, path, what, problems):
        """Record one check; `problems` lists messages, or (path, message) pairs for
        failures found in another file than PATH (empty when the check passed)."""
        if problems:
            self.failed += 1
            for message in problems:
                if isinstance(message, tuple):  # (path, message) naming another file
                    print(f"{message[0]}: {message[1]}")
                else:
                    print(f"{path}: {message}")
        else:
            self.passed += 1
            print(f"ok {path}: {what}")

    def finish(self):
        print(f"crds: {self.passed} passed, {self.failed} failed")
        return 0 if self.failed == 0 else 1


def shown(path):
    """Path as printed: relative to the repository when inside it."""
    absolute = os.path.abspath(path)
    if absolute == REPO or absolute.startswith(REPO + os.sep):
        return os.path.relpath(absolute, REPO)
    return path


def one_line(text):
    return " ".join(str(text).split())


# ----------------------------------------------------------------- YAML input


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys, as the API server does."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_documents(path):
    """Return the non-empty documents of a YAML file; raises OSError / yaml.YAMLError."""
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.load_all(handle, Loader=StrictLoader) if doc is not None]


def yaml_files(path):
    """Files named by PATH: the file itself, or every *.yaml / *.yml under a directory."""
    if os.path.isdir(path):
        found = []
        for directory, subdirs, files in os.walk(path):
            subdirs.sort()
            for name in sorted(files):
                if name.endswith((".yaml", ".yml")):
                    found.append(os.path.join(directory, name))
        return found
    return [path]


# ------------------------------------------------------ structural schema check


def kube_version_key(name):
    """Sort key following Kubernetes version priority (GA > beta > alpha, then numbers)."""
    match = KUBE_VERSION.match(name)
    if not match:
        return (-1, 0, 0, name)
    major, stage, minor = match.groups()
    rank = {"alpha": 0, "beta": 1, None: 2}[stage]
    return (rank, int(major), int(minor or 0), "")


def value_fits(value, type_name):
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    return True


def check_schema_node(node, where, problems, in_junctor=False, is_root=False):
    """Append to `problems` every way NODE (at WHERE) breaks the structural rules."""
    if not isinstance(node, dict):
        problems.append(f"{where}: schema must be a mapping, got {type(node).__name__}")
        return

    for key in node:
        if key in REFUSED_KEYS:
            problems.append(f"{where}: `{key}` is not allowed in a CRD schema")
        elif key.startswith("x-kubernetes-"):
            if key not in EXTENSION_KEYS:
                problems.append(f"{where}: unknown extension `{key}`")
        elif key not in SCHEMA_KEYS:
            problems.append(f"{where}: unknown schema keyword `{key}`")

    int_or_string = node.get("x-kubernetes-int-or-string")
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    for flag_name, flag in (("x-kubernetes-int-or-string", int_or_string),
                            ("x-kubernetes-preserve-unknown-fields", preserve)):
        if flag is not None and not isinstance(flag, bool):
            problems.append(f"{where}: `{flag_name}` must be a boolean")
    if preserve is False:
        problems.append(f"{where}: x-kubernetes-preserve-unknown-fields may only be true")

    node_type = node.get("type")
    if in_junctor:
        for key in NOT_IN_JUNCTORS & set(node):
            problems.append(f"{where}: `{key}` is not allowed inside anyOf/allOf/oneOf/not")
    else:
        if node_type is None:
            if int_or_string is not True and preserve is not True:
                problems.append(f"{where}: no `type` (and neither x-kubernetes-int-or-string "
                                "nor x-kubernetes-preserve-unknown-fields stands in)")
        elif int_or_string is True:
            problems.append(f"{where}: `type` must be empty with x-kubernetes-int-or-string")
        elif node_type not in TYPES:
            problems.append(f"{where}: unknown type {node_type!r}")
        if is_root and node_type != "object":
            problems.append(f"{where}: the root schema must have type object")

    if int_or_string is True and "anyOf" in node:
        alternatives = node["anyOf"]
        if alternatives != [{"type": "integer"}, {"type": "string"}]:
            problems.append(f"{where}: with x-kubernetes-int-or-string, anyOf may only be "
                            "[{type: integer}, {type: string}]")

    effective = node_type if not in_junctor else None
    if "properties" in node:
        if not in_junctor and node_type != "object":
            problems.append(f"{where}: `properties` on a node that is not an object")
        if "additionalProperties" in node:
            problems.append(f"{where}: `additionalProperties` together with `properties`")
        if not isinstance(node["properties"], dict):
            problems.append(f"{where}: `properties` must be a mapping")
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        if effective not in (None, "object"):
            problems.append(f"{where}: `additionalProperties` on a node that is not an object")
        if extra is False:
            problems.append(f"{where}: `additionalProperties: false` is refused by Kubernetes "
                            "(unknown fields are pruned instead)")
        elif not isinstance(extra, (dict, bool)):
            problems.append(f"{where}: `additionalProperties` must be a schema")
    if effective == "array" and "items" not in node:
        problems.append(f"{where}: array without `items`")
    if "items" in node:
        if effective not in (None, "array"):
            problems.append(f"{where}: `items` on a node that is not an array")
        if not isinstance(node["items"], dict):
            problems.append(f"{where}: `items` must be a single schema, not a list")

    if node.get("uniqueItems") is True:
        problems.append(f"{where}: `uniqueItems: true` is refused by Kubernetes "
                        "(use x-kubernetes-list-type: set)")
    if effective is not None:
        misplaced = (
            (NUMERIC_KEYS if effective not in ("integer", "number") else set())
            | (STRING_KEYS if effective != "string" else set())
            | (ARRAY_KEYS if effective != "array" else set())
            | (OBJECT_KEYS if effective != "object" else set())
        ) & set(node)
        for key in sorted(misplaced):
            problems.append(f"{where}: `{key}` does not apply to type {effective}")

    if "pattern" in node:
        try:
            re.compile(node["pattern"])
        except (re.error, TypeError) as err:
            problems.append(f"{where}: pattern does not compile: {err}")

    if "required" in node:
        required = node["required"]
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            problems.append(f"{where}: `required` must be a list of field names")
        else:
            if len(set(required)) != len(required):
                problems.append(f"{where}: `required` lists a field twice")
            properties = node.get("properties")
            if isinstance(properties, dict):
                for name in required:
                    if name not in properties:
                        problems.append(f"{where}: required field `{name}` has no schema")

    if "enum" in node:
        values = node["enum"]
        if not isinstance(values, list) or not values:
            problems.append(f"{where}: `enum` must be a non-empty list")
        elif node_type in TYPES:
            for value in values:
                if not value_fits(value, node_type):
                    problems.append(f"{where}: enum value {value!r} is not a {node_type}")

    if is_root and "metadata" in node.get("properties", {}):
        metadata = node["properties"]["metadata"]
        allowed = {"name", "generateName"}
        if not isinstance(metadata, dict) or set(metadata) - {"type", "description", "properties"} \
                or set(metadata.get("properties", {})) - allowed:
            problems.append(f"{where}.metadata: only `name` and `generateName` may be "
                            "restricted in metadata")

    # Recurse into the structural children ...
    properties = node.get("properties")
    if isinstance(properties, dict):
        for name, child in properties.items():
            check_schema_node(child, f"{where}.{name}", problems, in_junctor)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        check_schema_node(extra, f"{where}.<value>", problems, in_junctor)
    items = node.get("items")
    if isinstance(items, dict):
        check_schema_node(items, f"{where}[]", problems, in_junctor)
    # ... and into value validations, whose rules are stricter.
    for keyword in LOGICAL:
        if keyword in node:
            branches = node[keyword]
            if not isinstance(branches, list):
                problems.append(f"{where}: `{keyword}` must be a list")
                continue
            if int_or_string is True and keyword == "anyOf":
                continue  # the blessed [{type: integer}, {type: string}] form
            for index, branch in enumerate(branches):
                check_schema_node(branch, f"{where}.{keyword}[{index}]", problems, True)
    if "not" in node:
        check_schema_node(node["not"], f"{where}.not", problems, True)


# ------------------------------------------------------------------- CRD check


def check_crd_file(path, report, served):
    """Check one CRD file; record its versions' schemas in SERVED[(group, version, kind)]."""
    label = shown(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        documents = load_documents(path)
    except (OSError, yaml.YAMLError) as err:
        report.check(label, "CRD", [one_line(f"cannot read CRD: {err}")])
        return None
    if len(documents) != 1:
        report.check(label, "CRD", [f"expected exactly one document, found {len(documents)}"])
        return None
    crd = documents[0]
    if not isinstance(crd, dict):
        report.check(label, "CRD", ["the document is not a mapping"])
        return None

    problems = []
    if crd.get("apiVersion") != "apiextensions.k8s.io/v1":
        problems.append(f"apiVersion is {crd.get('apiVersion')!r}, "
                        "expected apiextensions.k8s.io/v1")
    if crd.get("kind") != "CustomResourceDefinition":
        problems.append(f"kind is {crd.get('kind')!r}, expected CustomResourceDefinition")
    spec = crd.get("spec") if isinstance(crd.get("spec"), dict) else {}
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    group = spec.get("group")
    kind = names.get("kind")
    plural = names.get("plural")

    if not isinstance(group, str) or not DNS_SUBDOMAIN.match(group) or "." not in group:
        problems.append(f"spec.group {group!r} is not a dotted DNS name")
    if not isinstance(kind, str) or not re.match(r"^[A-Z][A-Za-z0-9]*$", kind or ""):
        problems.append(f"names.kind {kind!r} is not a CamelCase kind")
        kind = None
    if plural != stem:
        problems.append(f"names.plural {plural!r} does not match the file name {stem!r}")
    if isinstance(plural, str) and not DNS_LABEL.match(plural):
        problems.append(f"names.plural {plural!r} is not a lowercase DNS label")
    if kind:
        if names.get("singular") != kind.lower():
            problems.append(f"names.singular {names.get('singular')!r} should be {kind.lower()!r}")
        if names.get("listKind") != kind + "List":
            problems.append(f"names.listKind {names.get('listKind')!r} should be {kind + 'List'!r}")
        if isinstance(plural, str) and not plural.startswith(kind.lower()[:-1]):
            problems.append(f"names.plural {plural!r} does not look like the plural of {kind}")
    short_names = names.get("shortNames", [])
    if not isinstance(short_names, list) or not all(
            isinstance(s, str) and DNS_LABEL.match(s) for s in short_names):
        problems.append("names.shortNames must be lowercase DNS labels")
        short_names = []
    expected_name = f"{plural}.{group}"
    metadata_name = (crd.get("metadata") or {}).get("name")
    if metadata_name != expected_name:
        problems.append(f"metadata.name {metadata_name!r} should be {expected_name!r}")
    if spec.get("scope") != "Namespaced":
        problems.append(f"scope is {spec.get('scope')!r}, expected Namespaced")
    conversion = spec.get("conversion")
    if conversion is not None and (conversion or {}).get("strategy", "None") != "None":
        if not (conversion.get("webhook") or {}).get("clientConfig"):
            problems.append("webhook conversion without webhook.clientConfig")

    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        problems.append("spec.versions is missing or empty")
        versions = []
    version_names = [v.get("name") for v in versions if isinstance(v, dict)]
    if len(version_names) != len(versions):
        problems.append("every entry of spec.versions must be a mapping")
    if len(set(version_names)) != len(version_names):
        problems.append("spec.versions names a version twice")
    for name in version_names:
        if not isinstance(name, str) or not KUBE_VERSION.match(name):
            problems.append(f"version name {name!r} is not a Kubernetes version (v1, v1beta2, ...)")
    storage = [v.get("name") for v in versions if isinstance(v, dict) and v.get("storage") is True]
    if len(storage) != 1:
        problems.append(f"exactly one version must have storage: true, found {len(storage)}")
    elif version_names:
        newest = max((n for n in version_names if isinstance(n, str)), key=kube_version_key)
        if storage[0] != newest:
            problems.append(f"storage version is {storage[0]}, expected the newest ({newest})")
    for version in versions:
        if not isinstance(version, dict):
            continue
        if version.get("served") is not True:
            problems.append(f"version {version.get('name')} is not served")
        if not isinstance(version.get("storage"), bool):
            problems.append(f"version {version.get('name')}: storage must be true or false")
        for column in version.get("additionalPrinterColumns") or []:
            if not isinstance(column, dict) or not column.get("name") \
                    or column.get("type") not in PRINTER_TYPES \
                    or not str(column.get("jsonPath", "")).startswith("."):
                problems.append(f"version {version.get('name')}: bad printer column {column!r}")
    listed = ", ".join(str(n) for n in version_names)
    report.check(label, f"CRD {metadata_name} ({kind}; versions {listed})", problems)

    # One structural check per version schema.
    for version in versions:
        if not isinstance(version, dict):
            continue
        name = version.get("name")
        schema = ((version.get("schema") or {}).get("openAPIV3Schema"))
        schema_problems = []
        if schema is None:
            schema_problems.append(f"version {name} has no schema.openAPIV3Schema")
        else:
            check_schema_node(schema, f"{name}: openAPIV3Schema", schema_problems, is_root=True)
        report.check(label, f"{group}/{name} {kind} schema is structural", schema_problems)
        if isinstance(group, str) and kind:
            # A schema that failed its check is recorded as None: documents of that
            # version are then reported as untestable rather than as unknown.
            served[(group, name, kind)] = (None if schema_problems else schema, label)
    return {"group": group, "kind": kind, "short": short_names, "label": label}


def check_crds(report):
    """Check every CRD file; return {(group, version, kind): (schema or None, crd label)}."""
    served = {}
    files = yaml_files(CRD_DIR) if os.path.isdir(CRD_DIR) else []
    if not files:
        report.check(shown(CRD_DIR), "CRDs", ["no CRD files found"])
        return served
    infos = [info for info in (check_crd_file(path, report, served) for path in files) if info]

    problems = []
    seen_kinds, seen_short = {}, {}
    for info in infos:
        key = (info["group"], info["kind"])
        if key in seen_kinds:
            problems.append(f"{info['kind']} in {info['group']} is defined by both "
                            f"{seen_kinds[key]} and {info['label']}")
        seen_kinds[key] = info["label"]
        for short in info["short"]:
            if short in seen_short:
                problems.append(f"shortName {short!r} is used by {seen_short[short]} "
                                f"and {info['label']}")
            seen_short[short] = info["label"]
    # Versions of a CRD file that failed before its schemas were looked at are missing
    # from `served`; read them back so this check reports only real differences.
    declared = set(served) | declared_from_files(files)
    for missing in sorted(EXPECTED_GVKS - declared):
        problems.append(f"no CRD serves {missing[0]}/{missing[1]} {missing[2]}")
    for extra in sorted(declared - EXPECTED_GVKS):
        problems.append(f"unexpected {extra[0]}/{extra[1]} {extra[2]} "
                        "(the decoder does not accept it)")
    report.check(shown(CRD_DIR), f"{len(declared)} group/version/kind triples are exactly "
                 "the ones Eino decodes", problems)
    return served


def declared_from_files(files):
    """Every (group, version, kind) the CRD files name, whatever their schemas' state."""
    triples = set()
    for path in files:
        try:
            documents = load_documents(path)
        except (OSError, yaml.YAMLError):
            continue
        for crd in documents:
            if not isinstance(crd, dict) or not isinstance(crd.get("spec"), dict):
                continue
            spec = crd["spec"]
            kind = (spec.get("names") or {}).get("kind")
            for version in spec.get("versions") or []:
                if isinstance(version, dict):
                    triples.add((spec.get("group"), version.get("name"), kind))
    return triples


# ------------------------------------------------- openAPIV3Schema -> JSON Schema


METADATA_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN.pattern},
        "namespace": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL.pattern},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def to_json_schema(node, in_junctor=False):
    """Translate one openAPIV3Schema node into draft-4 JSON Schema.

    x-kubernetes-* keys are dropped; int-or-string becomes anyOf [integer, string];
    objects that neither list additionalProperties nor preserve unknown fields refuse
    unknown keys (the API server would prune or, with strict validation, refuse them).
    """
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "example", "externalDocs"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(child, in_junctor) for name, child in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = to_json_schema(value, in_junctor or key == "not")
        elif key in LOGICAL:
            out[key] = [to_json_schema(branch, True) for branch in value]
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string") is True:
        out.pop("type", None)
        either = [{"type": "integer"}, {"type": "string"}]
        if "anyOf" in out and out["anyOf"] != either:
            out["allOf"] = out.get("allOf", []) + [{"anyOf": either}]
        else:
            out["anyOf"] = either
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = out["enum"] + [None]
    if (not in_junctor and out.get("type") == "object" and "additionalProperties" not in out
            and node.get("x-kubernetes-preserve-unknown-fields") is not True):
        out["additionalProperties"] = False
    return out


def document_schema(crd_schema, group, version, kind):
    """JSON Schema for a whole object of GROUP/VERSION KIND."""
    schema = to_json_schema(crd_schema)
    schema["$schema"] = "http://json-schema.org/draft-04/schema#"
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"enum": [f"{group}/{version}"]}
    properties["kind"] = {"enum": [kind]}
    properties["metadata"] = copy.deepcopy(METADATA_SCHEMA)
    schema["required"] = ["apiVersion", "kind", "metadata"] + [
        r for r in schema.get("required", []) if r not in ("apiVersion", "kind", "metadata")]
    return schema


class Validators:
    """Caches one jsonschema validator per served (group, version, kind)."""

    def __init__(self, served):
        self.served = served
        self.cache = {}

    def for_document(self, document):
        """(validator, None) for DOCUMENT, or (None, reason) when no CRD covers it."""
        if not isinstance(document, dict):
            return None, f"document is a {type(document).__name__}, not a Kubernetes object"
        api_version, kind = document.get("apiVersion"), document.get("kind")
        if not isinstance(api_version, str) or "/" not in api_version or not isinstance(kind, str):
            return None, f"apiVersion {api_version!r} / kind {kind!r} do not name a custom resource"
        group, version = api_version.split("/", 1)
        key = (group, version, kind)
        if key not in self.served:
            return None, f"no CRD in manifests/crds serves {api_version} {kind}"
        if self.served[key][0] is None:
            return None, (f"the {api_version} {kind} schema in {self.served[key][1]} "
                          "failed its checks, so it cannot be validated against")
        if key not in self.cache:
            schema = document_schema(self.served[key][0], group, version, kind)
            jsonschema.Draft4Validator.check_schema(schema)
            self.cache[key] = jsonschema.Draft4Validator(schema)
        return self.cache[key], None


def describe(document, index):
    metadata = document.get("metadata") if isinstance(document, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    kind = document.get("kind") if isinstance(document, dict) else None
    return f"document {index + 1} ({kind or '?'} {name or '?'})"


def field_path(error):
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def schema_errors(validator, document):
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{field_path(e)}: {e.message}" for e in errors]


# -------------------------------------------------------------------- modes


def validate_paths(paths, validators, report):
    for path in paths:
        files = yaml_files(path)
        if not os.path.exists(path) or not files:
            report.check(shown(path), "manifests", ["no such file, or no YAML files in it"])
            continue
        for file_path in files:
            label = shown(file_path)
            try:
                documents = load_documents(file_path)
            except (OSError, yaml.YAMLError) as err:
                report.check(label, "YAML", [one_line(f"cannot read: {err}")])
                continue
            if not documents:
                report.check(label, "YAML", ["no YAML documents in the file"])
                continue
            for index, document in enumerate(documents):
                what = describe(document, index)
                validator, reason = validators.for_document(document)
                if validator is None:
                    report.check(label, what, [f"{what}: {reason}"])
                    continue
                errors = schema_errors(validator, document)
                report.check(label, f"{what} matches {document['apiVersion']} schema",
                             [f"{what}: {e}" for e in errors])


def expect_invalid(path, validators, report):
    label = shown(path)
    try:
        documents = load_documents(path)
    except (OSError, yaml.YAMLError) as err:
        report.check(label, "rejected", [one_line(f"cannot test: {err}")])
        return
    if not documents:
        report.check(label, "rejected", ["cannot test: no YAML documents in the file"])
        return
    rejections = []
    for index, document in enumerate(documents):
        validator, reason = validators.for_document(document)
        if validator is None:
            # Not reaching a schema would make the test meaningless (e.g. a typo in kind).
            report.check(label, "rejected", [f"cannot test {describe(document, index)}: {reason}"])
            return
        rejections += [f"{describe(document, index)}: {e}"
                       for e in schema_errors(validator, document)]
    if rejections:
        report.check(label, f"rejected as expected ({rejections[0]})", [])
    else:
        report.check(label, "rejected", ["expected a schema validation failure, but every "
                                         "document is valid"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="manifest files or directories (default: manifests/examples)")
    parser.add_argument("--expect-invalid", action="append", default=[], metavar="FILE",
                        help="pass only if FILE fails schema validation (repeatable)")
    args = parser.parse_args(argv)

    report = Report()
    served = check_crds(report)
    validators = Validators(served)
    paths = args.paths or ([] if args.expect_invalid else DEFAULT_PATHS)
    if paths:
        validate_paths(paths, validators, report)
    for path in args.expect_invalid:
        expect_invalid(path, validators, report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
