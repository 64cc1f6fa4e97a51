"""Client environments for the compat tests, built once and reused.

Each third-party client runs in an environment of its own (the ``flashbots`` package pins
``web3<7``; the project uses newer eth-account), keyed by a hash of what it installs, under
``$BLOCKSPACE_COMPAT_VENV`` or ``~/.cache/blockspace-compat``. A registry that cannot be reached
FAILS the tests, since CI must reach PyPI and npm; ``BLOCKSPACE_SKIP_COMPAT=1`` skips them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SKIP_HINT = "set BLOCKSPACE_SKIP_COMPAT=1 to skip the compat tests"
# What each client environment installs. Exact pins: the cache key is a hash of these, and a
# new client release should be a deliberate change here, not a surprise in CI.
FLASHBOTS_PY_REQUIREMENTS = ("flashbots==2.0.0",)  # pulls web3>=6,<7
ETHERS_PACKAGES = {
    # ethers is pinned to the provider's declared peer dependency (npm warns on any other).
    "ethers": "6.7.1",
    "@flashbots/ethers-provider-bundle": "1.0.0",
}
INSTALL_TIMEOUT_S = 150


def is_compat_skipped() -> bool:
    return os.environ.get("BLOCKSPACE_SKIP_COMPAT") == "1"


def get_cache_root() -> Path:
    """Where client environments live: $BLOCKSPACE_COMPAT_VENV, else the user's cache dir."""
    explicit = os.environ.get("BLOCKSPACE_COMPAT_VENV")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "blockspace-compat"


def compute_env_key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Two pytest runs sharing one cache must not build the same environment at once.
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_install(cmd: list[str], what: str, *, cwd: Path | None = None) -> None:
    """Run one install step; a failure fails the test with the tool's own words."""
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"{what} did not finish in {INSTALL_TIMEOUT_S} s; is the package registry "
            f"reachable? ({SKIP_HINT})",
            pytrace=False,
        )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        pytest.fail(
            f"{what} failed (exit {proc.returncode}); the compat tests need the package "
            f"registry ({SKIP_HINT}).\n$ {' '.join(cmd)}\n{tail}",
            pytrace=False,
        )


def ensure_cached_env(
    name: str, key: str, build: Callable[[Path], None], is_usable: Callable[[Path], bool]
) -> Path:
    """The directory ``<cache>/<name>-<key>``, built by ``build`` unless a usable one exists."""
    root = get_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-{key}"
    marker = target / ".blockspace-compat-complete"
    with _file_lock(root / f"{name}-{key}.lock"):
        if marker.exists() and is_usable(target):
            return target
        # A half-built or broken environment (interrupted install, removed base interpreter)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        build(target)
        if not is_usable(target):
            pytest.fail(f"{target} was built but does not work", pytrace=False)
        marker.write_text(json.dumps({"built_at": time.time()}))
    return target


def ensure_flashbots_venv() -> Path:
    """The python of a virtualenv holding the PyPI ``flashbots`` package (and web3 6)."""
    requirements = "".join(f"{r}\n" for r in FLASHBOTS_PY_REQUIREMENTS)
    py_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    key = compute_env_key("python-venv", py_version, requirements)

    def python_of(venv: Path) -> Path:
        return venv / "bin" / "python"

    def build(venv: Path) -> None:
        _run_install([sys.executable, "-m", "venv", str(venv)], "creating the compat venv")
        (venv / "requirements.txt").write_text(requirements)
        _run_install(
            [
                str(python_of(venv)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--timeout",
                "20",
                "--retries",
                "2",
                "-r",
                str(venv / "requirements.txt"),
            ],
            "pip install " + " ".join(FLASHBOTS_PY_REQUIREMENTS),
        )

    def is_usable(venv: Path) -> bool:
        probe = [str(python_of(venv)), "-c", "import flashbots, web3"]
        try:
            return subprocess.run(probe, capture_output=True, timeout=60).returncode == 0
        except OSError:
            return False

    return python_of(ensure_cached_env("flashbots-py", key, build, is_usable))


@dataclass(frozen=True)
class NodeEnv:
    node: str
    node_modules: Path


def ensure_ethers_env() -> NodeEnv:
    """Node plus a node_modules holding ethers 6 and ``@flashbots/ethers-provider-bundle``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(f"node and npm (Node 20) are needed for this test ({SKIP_HINT})", pytrace=False)
    node_major = (
        subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
        .stdout.strip()
        .split(".")[0]
    )
    manifest = {
        "name": "blockspace-compat-ethers",
        "private": True,
        "dependencies": ETHERS_PACKAGES,
    }
    manifest_text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    key = compute_env_key("node-modules", node_major, manifest_text)

    def build(directory: Path) -> None:
        (directory / "package.json").write_text(manifest_text)
        _run_install(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--fetch-timeout=20000",
                "--fetch-retries=1",
            ],
            "npm install " + " ".join(f"{k}@{v}" for k, v in ETHERS_PACKAGES.items()),
            cwd=directory,
        )

    def is_usable(directory: Path) -> bool:
        return all(
            (directory / "node_modules" / name / "package.json").exists()
            for name in ETHERS_PACKAGES
        )

    directory = ensure_cached_env("ethers-provider-bundle", key, build, is_usable)
    return NodeEnv(node=node, node_modules=directory / "node_modules")
