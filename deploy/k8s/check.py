#!/usr/bin/env python3
"""Offline check of Guichet's Kubernetes manifests (deploy/k8s).

Needs no cluster and no network. It checks that:
- every YAML document under deploy/k8s parses;
- every path a kustomization lists in `resources`, `components` or `patches`
  exists (a directory must hold a kustomization; a component must be one);
- every workload's containers, init containers included, carry resources and
  the hardened security context (non-root, read-only root filesystem, no
  privilege escalation, all capabilities dropped, seccomp RuntimeDefault), and
  every Deployment's (non-init) containers a readiness and a liveness probe;
- every overlay renders, when `kustomize` or `kubectl` is on PATH (else skipped).

Usage: python deploy/k8s/check.py [ROOT]. Exits 1 and lists every problem.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
WORKLOAD_KINDS = {"Deployment", "Job"}

Doc = dict[str, Any]


def load_all(root: Path) -> tuple[dict[Path, list[Doc]], list[str]]:
    """Parse every YAML file under root; return its documents and parse errors."""
    docs: dict[Path, list[Doc]] = {}
    problems: list[str] = []
    for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        try:
            docs[path] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as error:
            problems.append(f"{path.relative_to(root)}: does not parse: {error}")
    return docs, problems


def is_remote(entry: str) -> bool:
    """A resource kustomize fetches (URL or git reference): not checked offline."""
    return "://" in entry or entry.startswith(("github.com/", "git@"))


def kustomization_of(directory: Path) -> Path | None:
    """The kustomization file of a directory, if it has one."""
    return next((directory / n for n in KUSTOMIZATION_NAMES if (directory / n).is_file()), None)


def referenced_paths(kustomization: Doc) -> Iterator[tuple[str, str]]:
    """(field, relative path) for every local path a kustomization lists."""
    for field in ("resources", "components"):
        for entry in kustomization.get(field) or []:
            if not is_remote(entry):
                yield field, entry
    for patch in kustomization.get("patches") or []:
        if isinstance(patch, dict) and "path" in patch:  # inline `patch:` has no file
            yield "patches", patch["path"]
    for entry in kustomization.get("patchesStrategicMerge") or []:  # legacy spelling
        if isinstance(entry, str) and "\n" not in entry:
            yield "patchesStrategicMerge", entry


def check_kustomizations(root: Path, docs: dict[Path, list[Doc]]) -> tuple[list[str], set[Path]]:
    """Check every kustomization's paths; return problems and the patch files seen."""
    problems: list[str] = []
    patch_files: set[Path] = set()
    for path, documents in docs.items():
        if path.name not in KUSTOMIZATION_NAMES or not documents:
            continue
        where = path.relative_to(root)
        for field, entry in referenced_paths(documents[0]):
            target = (path.parent / entry).resolve()
            if field.startswith("patches"):
                patch_files.add(target)
            if not target.exists():
                problems.append(f"{where}: {field} entry '{entry}' does not exist")
            elif target.is_dir():
                inner = kustomization_of(target)
                if inner is None:
                    problems.append(f"{where}: {field} entry '{entry}' has no kustomization")
                    continue
                kind = (docs.get(inner) or [{}])[0].get("kind")
                if field == "components" and kind != "Component":
                    problems.append(f"{where}: component '{entry}' is not kind: Component")
    return problems, patch_files


def check_container(name: str, container: Doc, pod: Doc, needs_probes: bool) -> list[str]:
    """Problems with one container: probes, resources, security context."""
    problems: list[str] = []
    security = container.get("securityContext") or {}
    pod_security = pod.get("securityContext") or {}
    if needs_probes:
        for probe in ("readinessProbe", "livenessProbe"):
            if not container.get(probe):
                problems.append(f"{name}: no {probe}")
    resources = container.get("resources") or {}
    for bound in ("requests", "limits"):
        missing = {"cpu", "memory"} - set(resources.get(bound) or {})
        if missing:
            problems.append(f"{name}: resources.{bound} lacks {', '.join(sorted(missing))}")
    if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
        problems.append(f"{name}: runAsNonRoot is not true")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{name}: readOnlyRootFilesystem is not true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{name}: allowPrivilegeEscalation is not false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{name}: capabilities do not drop ALL")
    seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append(f"{name}: seccompProfile is not RuntimeDefault")
    return problems


def check_workloads(root: Path, docs: dict[Path, list[Doc]], patch_files: set[Path]) -> list[str]:
    """Check every Deployment's and Job's containers and init containers (patch files
    are partial: skipped)."""
    problems: list[str] = []
    for path, documents in docs.items():
        if path.resolve() in patch_files:
            continue
        for doc in documents:
            if not isinstance(doc, dict) or doc.get("kind") not in WORKLOAD_KINDS:
                continue
            pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
            label = f"{path.relative_to(root)}: {doc['kind']} {doc.get('metadata', {}).get('name')}"
            containers = pod.get("containers") or []
            if not containers:
                problems.append(f"{label}: no containers")
            for container in containers:
                problems += check_container(
                    f"{label}, container {container.get('name')}",
                    container,
                    pod,
                    needs_probes=doc["kind"] == "Deployment",
                )
            # Init containers run to completion before the others: no probes.
            for container in pod.get("initContainers") or []:
                problems += check_container(
                    f"{label}, init container {container.get('name')}", container, pod, needs_probes=False
                )
    return problems


def render_overlays(root: Path) -> tuple[list[str], str]:
    """Render every overlay with the kustomize found on PATH; return problems and a note."""
    if shutil.which("kustomize"):
        command = ["kustomize", "build"]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize"]
    else:
        return [], "no kustomize or kubectl on PATH: overlays not rendered"
    problems: list[str] = []
    overlays = sorted(d for d in (root / "overlays").iterdir() if kustomization_of(d))
    for overlay in overlays:
        result = subprocess.run(
            [*command, str(overlay)], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            error = result.stderr.strip()
            problems.append(f"{overlay.relative_to(root)}: does not render: {error}")
    names = ", ".join(o.name for o in overlays)
    return problems, f"rendered with {' '.join(command)}: {names}"


def main(argv: list[str]) -> int:
    """Run every check on ROOT (default: this file's folder); 0 when all pass."""
    root = Path(argv[1]).resolve() if len(argv) > 1 else ROOT
    docs, problems = load_all(root)
    kustomization_problems, patch_files = check_kustomizations(root, docs)
    problems += kustomization_problems
    problems += check_workloads(root, docs, patch_files)
    render_problems, note = render_overlays(root)
    problems += render_problems
    if problems:
        print(f"deploy/k8s check FAILED ({len(problems)} problems):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"deploy/k8s check passed: {len(docs)} YAML files; {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
