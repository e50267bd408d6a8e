"""Importing agent entrypoints and schema models, only from allowed import roots.

A manifest names code as ``module:attribute``; the module is located with
:func:`importlib.util.find_spec` *before* anything is executed, and imported only if it
lives in an allowed root: the manifest's own folder, agentrt's built-in agents, the
packages of the distribution that registered the agent, or a package listed in
``AGENTRT_IMPORT_ROOTS``. Nothing from a manifest is ever evaluated.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from agentrt.errors import AgentrtError

__all__ = [
    "GENERIC_LLM_ENTRYPOINT",
    "EntrypointError",
    "ImportPolicy",
    "import_object",
    "source_hash",
]

BUILTIN_PREFIX = "agentrt.agents.builtin"
#: The entrypoint of a ``kind: llm`` agent without an output hook: agentrt's own LLM runner
#: (``agentrt.agents.llm.GENERIC_ENTRYPOINT``). It is never imported as an agent's code, only
#: named, so it is allowed whatever the manifest's folder.
GENERIC_LLM_ENTRYPOINT = "agentrt.agents.llm:run_llm_agent"
_path_lock = threading.Lock()


class EntrypointError(AgentrtError, ImportError):
    """An entrypoint or schema reference cannot be imported; the message says how to fix it."""

    retryable = False
    hint = "run `agentrt agents validate` and fix the entrypoint"


class ImportPolicy:
    """Where an agent's code may be imported from."""

    def __init__(self, base_dir: str | Path | None = None, packages: Sequence[str] = ()) -> None:
        self.base_dir = Path(base_dir).resolve() if base_dir else None
        env = [p.strip() for p in os.environ.get("AGENTRT_IMPORT_ROOTS", "").split(",")]
        self.packages = tuple(p for p in (*packages, *env) if p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_dir": str(self.base_dir) if self.base_dir else None,
            "packages": self.packages,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportPolicy:
        # Rebuilt for every attempt of an agent: the path was resolved when the policy was
        # made, and the environment's roots are already in ``packages``.
        policy = cls.__new__(cls)
        base_dir = data.get("base_dir")
        policy.base_dir = Path(base_dir) if base_dir else None
        policy.packages = tuple(data.get("packages", ()))
        return policy

    @property
    def key(self) -> tuple[str | None, tuple[str, ...]]:
        """What the policy allows, as a hashable value."""
        return (str(self.base_dir) if self.base_dir else None, self.packages)

    def allows_name(self, module: str) -> bool:
        roots = (BUILTIN_PREFIX, *self.packages)
        return any(module == r or module.startswith(r + ".") for r in roots)

    def ensure_on_path(self) -> None:
        if self.base_dir and str(self.base_dir) not in sys.path:
            with _path_lock:
                if str(self.base_dir) not in sys.path:
                    sys.path.insert(0, str(self.base_dir))

    def check(self, module: str) -> Path | None:
        """Locate ``module`` without running it; raise if it is outside the allowed roots."""
        self.ensure_on_path()
        top = module.split(".")[0]
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError) as exc:
            raise EntrypointError(f"module {top!r} cannot be located: {exc}") from None
        if spec is None:
            where = f" in {self.base_dir} or" if self.base_dir else ""
            raise EntrypointError(
                f"module {module!r} not found{where} among installed packages; check the "
                "entrypoint spelling, or install the package that provides it"
            )
        location = _spec_location(spec)
        if self.allows_name(module):
            return location
        if self.base_dir and location and location.is_relative_to(self.base_dir):
            return location
        if self.base_dir and any((self.base_dir / name).exists() for name in (f"{top}.py", top)):
            raise EntrypointError(
                f"module {top!r} next to this manifest is shadowed by another module of the "
                f"same name already loaded from {location}; rename one of them"
            )
        raise EntrypointError(
            f"module {module!r} is outside the allowed import roots (the manifest's folder"
            f"{' ' + str(self.base_dir) if self.base_dir else ''}, {BUILTIN_PREFIX}"
            f"{', ' + ', '.join(self.packages) if self.packages else ''}); move the agent's code "
            "next to its manifest or add its package to AGENTRT_IMPORT_ROOTS"
        )


def _spec_location(spec: importlib.machinery.ModuleSpec) -> Path | None:
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        return Path(spec.origin).resolve()
    return None


def import_object(ref: str, policy: ImportPolicy, *, what: str = "entrypoint") -> Any:
    """Import ``module:attr.path`` under ``policy``; raise :class:`EntrypointError` otherwise."""
    module_name, _, attr_path = ref.partition(":")
    policy.check(module_name)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise EntrypointError(
            f"{what} {ref!r}: importing {module_name!r} failed with {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise EntrypointError(
                f"{what} {ref!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from None
        if inspect.ismodule(obj):
            # `allowed.module:os.system` would reach any code through an allowed module.
            raise EntrypointError(
                f"{what} {ref!r} goes through the module {obj.__name__!r}; name the module "
                "that defines the object before the colon"
            )
    defined_in = getattr(obj, "__module__", None)
    if isinstance(defined_in, str) and defined_in != module_name:
        try:
            policy.check(defined_in)
        except EntrypointError:
            raise EntrypointError(
                f"{what} {ref!r} is defined in {defined_in!r}, outside the allowed import roots; "
                "point the manifest at your own code"
            ) from None
    return obj


_loaded: dict[tuple[str, tuple[str | None, tuple[str, ...]]], Callable[..., Any]] = {}


def load_callable(ref: str, policy: ImportPolicy) -> Callable[..., Any]:
    """The agent function ``ref`` names, checked against ``policy``.

    Successful loads are remembered per process: every attempt of every agent loads its
    entrypoint, and locating a module (``find_spec``, resolving paths) costs more than a
    no-op agent's run. Python would not re-import the module anyway.
    """
    key = (ref, policy.key)
    fn = _loaded.get(key)
    if fn is not None:
        return fn
    obj = import_object(ref, policy)
    if not callable(obj) or inspect.isclass(obj):
        raise EntrypointError(
            f"entrypoint {ref!r} is a {type(obj).__name__}, not a function; point it at the "
            "agent's function"
        )
    _loaded[key] = obj
    return obj


@lru_cache(maxsize=512)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def source_hash(ref: str, policy: ImportPolicy) -> str:
    """A hash of the source file that defines an entrypoint (part of the cache key)."""
    module_name = ref.partition(":")[0]
    # The generic LLM runner is agentrt's own module: hashed (its source keys the cache like
    # any agent's) but not subject to the manifest's import roots.
    location = None if ref == GENERIC_LLM_ENTRYPOINT else policy.check(module_name)
    spec = importlib.util.find_spec(module_name)
    origin = spec.origin if spec and spec.origin else (str(location) if location else None)
    if not origin or not os.path.isfile(origin):
        return "unknown"
    st = os.stat(origin)
    return _file_digest(origin, st.st_mtime_ns, st.st_size)
