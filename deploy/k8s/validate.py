#!/usr/bin/env python3
"""Validate Guichet's rendered overlays against schemas, offline.

Each overlay is rendered with kustomize (``kustomize`` or ``kubectl kustomize``), and
every resource is validated in strict mode (an unknown field is an error, as with
``kubectl apply --validate=strict``):

- built-in kinds against the Kubernetes JSON schemas shipped by ``kubernetes-validate``
  (``KUBERNETES_VERSION``);
- custom resources (KEDA, CloudNativePG, the RabbitMQ operators, prometheus-operator)
  against the CRD schemas kept in ``deploy/k8s/schemas/`` (their README says where
  they come from). A kind with no schema at all is an error too.

Usage: python deploy/k8s/validate.py [OVERLAY_DIR...] (default: every overlay).
Exits 1 and lists every problem.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent
SCHEMAS = ROOT / "schemas"
KUBERNETES_VERSION = "1.32"  # the oldest minor Guichet supports (preStop sleep, matchLabelKeys)


def render(overlay: Path) -> list[dict[str, Any]]:
    """The overlay's resources, as kustomize renders them."""
    if kustomize := shutil.which("kustomize"):
        command = [kustomize, "build", str(overlay)]
    elif kubectl := shutil.which("kubectl"):
        command = [kubectl, "kustomize", str(overlay)]
    else:
        raise RuntimeError("neither kustomize nor kubectl is installed: cannot render the overlays")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{overlay} does not render: {result.stderr.strip()}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _name(resource: dict[str, Any]) -> str:
    return f"{resource.get('kind')}/{(resource.get('metadata') or {}).get('name')}"


def crd_schema(resource: dict[str, Any], schemas: Path = SCHEMAS) -> dict[str, Any] | None:
    """The kept CRD schema of a custom resource's group, version and kind, if any."""
    group, _, version = str(resource.get("apiVersion", "")).rpartition("/")
    path = schemas / f"{group}_{version}_{resource.get('kind')}.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


def validate_resource(resource: dict[str, Any], schemas: Path = SCHEMAS) -> list[str]:
    """Problems of one resource (empty: valid)."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    name = _name(resource)
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        return []
    except ValidationError as exc:  # a jsonschema.ValidationError (the first one found)
        return [f"{name}: {_where(exc)}: {exc.message}"]
    except SchemaNotFoundError:
        pass
    schema = crd_schema(resource, schemas)
    if schema is None:
        return [f"{name}: no schema for {resource.get('apiVersion')} {resource.get('kind')} "
                f"(add its CRD schema to deploy/k8s/schemas/)"]
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{name}: {_where(e)}: {e.message}" for e in sorted(validator.iter_errors(resource), key=str)]


def validate_overlay(overlay: Path, schemas: Path = SCHEMAS) -> tuple[list[str], int]:
    """(problems, resources validated) of a rendered overlay."""
    try:
        resources = render(overlay)
    except RuntimeError as exc:
        return [str(exc)], 0
    problems = [f"{overlay.name}: {p}" for r in resources for p in validate_resource(r, schemas)]
    return problems, len(resources)


def main(argv: list[str]) -> int:
    overlays = [Path(a) for a in argv] or sorted(p for p in (ROOT / "overlays").iterdir() if p.is_dir())
    problems: list[str] = []
    for overlay in overlays:
        found, counted = validate_overlay(overlay)
        problems += found
        sys.stdout.write(f"{overlay.name}: {counted} resources validated, {len(found)} problems\n")
    for problem in problems:
        sys.stdout.write(f"  {problem}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
