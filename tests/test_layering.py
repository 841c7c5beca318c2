"""The package's layering: outside libraries only behind the wrappers, imports only downward and never in a
cycle, and the pipelines built on the public API alone."""
import ast
from pathlib import Path

import reenact

ROOT = Path(__file__).resolve().parents[1]
OURS = ("reenact", "third_party_wrappers", "pipelines")
OUTSIDE = {"mediapipe", "decord", "av", "PIL", "lpips", "dlib", "face_recognition", "face_recognition_models"}
# optional extras: their one importer in the package
OPTIONAL = {"gradio": {"reenact.app"}, "ray": {"reenact.batch"}, "playwright": set()}
# bottom to top: a module imports only from its own tier or those below it (every module has a tier)
TIERS = {
    "foundations": {"reenact.errors", "reenact.structures", "reenact.geometry", "reenact.spans", "reenact.canonical",
                    "reenact.raster", "reenact.config", "reenact.cache", "reenact.quality", "reenact.losses",
                    "reenact.eg3d.camera"},
    "wrappers": {"third_party_wrappers"},
    "stages": {"reenact.inputs", "reenact.follow", "reenact.track", "reenact.tracks_io", "reenact.screen",
               "reenact.repair", "reenact.outline", "reenact.pose", "reenact.expression", "reenact.ict_basis",
               "reenact.ict", "reenact.dense_face", "reenact.presets", "reenact.smooth", "reenact.transfer",
               "reenact.driving", "reenact.crop",
               "reenact.backdrop", "reenact.compose", "reenact.warp", "reenact.identity", "reenact.observe",
               "reenact.eg3d", "reenact.invert", "reenact.tune", "reenact.symmetry"},
    "renderers": {"reenact.scene", "reenact.warp_render", "reenact.gan_render"},
    "pipeline": {"reenact.pipeline"},
    "commands": {"reenact.run", "reenact.evaluate", "reenact.export_tracks", "reenact.assets", "reenact.demo",
                 "reenact.app", "reenact.batch", "reenact.data", "pipelines"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for top in OURS:
        for path in (ROOT / top).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (function-level imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                      for a in node.names}
    return names


def _tier(module: str) -> int:
    for rank, members in enumerate(TIERS.values()):
        if any(module == m or module.startswith(m + ".") for m in members):
            return rank
    raise AssertionError(f"{module} has no tier in tests/test_layering.py: decide where it belongs")


def test_outside_libraries_are_imported_only_by_the_wrappers():
    for name, path in MODULES.items():
        if name.startswith("third_party_wrappers"):
            continue
        used = {i.split(".")[0] for i in _imports(path)} & OUTSIDE
        assert not used, f"{name} imports {sorted(used)}: put it behind a third_party_wrappers adapter"


def test_optional_extras_are_imported_by_their_own_module_only():
    for name, path in MODULES.items():
        for extra in {i.split(".")[0] for i in _imports(path)} & set(OPTIONAL):
            assert name in OPTIONAL[extra], f"{name} imports the optional {extra}"


def test_modules_import_only_downward():
    for name, path in MODULES.items():
        for target in _imports(path):
            if target.split(".")[0] in OURS and target != "reenact" and not name.startswith("pipelines"):
                assert _tier(target) <= _tier(name), f"{name} ({_tier(name)}) imports {target} ({_tier(target)})"


def test_no_import_cycles():
    graph = {name: {t for t in _imports(path) if t in MODULES and t != name} for name, path in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt])
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_pipelines_use_only_the_public_api():
    """pipelines/ import from `reenact` alone (no submodule, no wrapper), and every public name resolves."""
    for name, path in MODULES.items():
        if name.startswith("pipelines"):
            ours = {i for i in _imports(path) if i.split(".")[0] in OURS}
            assert ours <= {"reenact"}, f"{name} imports {sorted(ours - {'reenact'})}"
    for public in reenact.__all__:
        assert getattr(reenact, public) is not None
