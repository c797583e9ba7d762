"""The import graph of vsa_tf, read with `ast` (nothing is imported): no cycles, no upward imports, and
imports inside functions only where they keep `vsa-tf --help` fast (the CLI and its command handlers).

An edge `a -> b` means module `a` imports module `b`, at module level or inside a function. `from
vsa_tf.x import y` is an edge to `vsa_tf.x.y` when `y` is a module (a file or a package), else to
`vsa_tf.x`; a package is the module of its `__init__.py`. Importing a submodule also runs its parent
packages' `__init__.py`, but that implicit edge is not counted (every package re-exporting its own
submodules would otherwise be a cycle). `importlib.import_module` calls (the CLI's command table) are
not seen.
"""

import ast
import collections
import dataclasses
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The layering, bottom (0) to top. A module may import modules of its own rank or below, never above.
# A module belongs to the longest entry that prefixes its name.
RANKS = {
    # Leaves: the version string and atomic file writes.
    "vsa_tf": 0,
    "vsa_tf.files": 0,
    # Typed configs and everything that reads files and builds tf.data pipelines. One rank: config reads
    # the split names of `data.records`, and the synthetic world's config is a `config.ConfigMixin`.
    "vsa_tf.config": 1,
    "vsa_tf.data": 1,
    # Keras layers: `keras.ops` over tensors, configured by `config`.
    "vsa_tf.layers": 2,
    # The keras-cv EfficientNet-Lite builder: a backbone the layers build (it imports only keras-cv).
    "vsa_tf.pretrained.efficientnet_lite": 2,
    # Generic building blocks over layers and data that know no model: samplers run any `next` closure,
    # evaluation scores any model with `encode_images`/`encode_sentences`, pretrained builds backbones
    # (its feature model is a layer stack), the rest are plain numpy/matplotlib/HTTP.
    "vsa_tf.align": 3,
    "vsa_tf.evaluation": 3,
    "vsa_tf.pretrained": 3,
    "vsa_tf.regularities": 3,
    "vsa_tf.samplers": 3,
    "vsa_tf.serving": 3,
    "vsa_tf.visualize": 3,
    # What puts the blocks together: models (layers + samplers), their export signatures, the fit loop
    # (which needs the models' cross-replica helpers).
    "vsa_tf.export": 4,
    "vsa_tf.models": 4,
    "vsa_tf.training": 4,
    # Orchestration: load data, train, evaluate, save runs. Only the CLI may import it.
    "vsa_tf.jobs": 5,
    # The command line, which imports the jobs inside its handlers.
    "vsa_tf.cli": 6,
    "vsa_tf.commands": 6,
    "vsa_tf.__main__": 6,
}

# Where an import inside a function is the rule rather than a smell: parsers are built without
# importing TensorFlow, and each handler imports the job it runs.
FUNCTION_LEVEL_ALLOWED = ("vsa_tf.cli", "vsa_tf.commands")


@dataclasses.dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported vsa_tf module
    line: int
    in_function: bool

    def __str__(self):
        where = "inside a function" if self.in_function else "module level"
        return f"{self.source} -> {self.target} (line {self.line}, {where})"


def find_modules(root, package="vsa_tf"):
    """{module name: file path} of every module of `package` under `root` (packages need __init__.py)."""
    modules = {}
    for directory, subdirectories, filenames in os.walk(os.path.join(root, package)):
        subdirectories[:] = sorted(name for name in subdirectories if os.path.exists(os.path.join(directory, name, "__init__.py")))
        for filename in sorted(filenames):
            if not filename.endswith(".py"):
                continue
            parts = os.path.relpath(os.path.join(directory, filename[:-3]), root).split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = os.path.join(directory, filename)
    return modules


def _function_parents(tree):
    """The set of ids of the nodes that lie inside a function or lambda body."""
    inside = set()

    def visit(node, in_function):
        if in_function:
            inside.add(id(node))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return inside


def _resolve_relative(source, is_package, level, module):
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([module] if module else []))


def find_imports(modules, package="vsa_tf"):
    """Every import of a `package` module by a module of `modules`, as `Import`s in source order."""
    imports = []
    for source, path in sorted(modules.items()):
        with open(path, encoding="utf-8") as stream:
            tree = ast.parse(stream.read(), filename=path)
        in_function = _function_parents(tree)
        is_package = os.path.basename(path) == "__init__.py"
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = _resolve_relative(source, is_package, node.level, node.module)
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    targets.append(candidate if candidate in modules else base)
            for target in targets:
                if target == package or target.startswith(package + "."):
                    imports.append(Import(source, target, node.lineno, id(node) in in_function))
    return sorted(set(imports), key=lambda item: (item.source, item.line, item.target))


def find_cycles(imports):
    """One cycle per strongly connected component of the import graph, as a list of module names
    whose first and last entries are the same module."""
    graph = collections.defaultdict(set)
    for item in imports:
        if item.source != item.target:
            graph[item.source].add(item.target)
    # Tarjan's strongly connected components, iteratively (no recursion limit on deep graphs).
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    cycles = []
    for component in components:
        # The shortest cycle through the component's first module, by breadth-first search inside it.
        first = min(component)
        previous = {first: None}
        queue = collections.deque([first])
        closing = None
        while queue and closing is None:
            node = queue.popleft()
            for child in sorted(graph[node] & component):
                if child == first:
                    closing = node
                    break
                if child not in previous:
                    previous[child] = node
                    queue.append(child)
        chain = [closing]
        while previous[chain[-1]] is not None:
            chain.append(previous[chain[-1]])
        cycles.append([first, *reversed(chain[:-1]), first])
    return sorted(cycles)


def rank_of(module, ranks=RANKS):
    """The rank of the longest `ranks` entry that is `module` or a package above it; None if none is."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        name = ".".join(parts[:length])
        if name in ranks:
            return ranks[name]
    return None


def upward_imports(imports, ranks=RANKS):
    """The imports whose target sits higher in `ranks` than their source."""
    return [item for item in imports if rank_of(item.target, ranks) > rank_of(item.source, ranks)]


def disallowed_function_imports(imports, allowed=FUNCTION_LEVEL_ALLOWED):
    """Imports inside functions by modules outside the `allowed` packages."""
    return [
        item
        for item in imports
        if item.in_function and not any(item.source == name or item.source.startswith(name + ".") for name in allowed)
    ]


def _format_cycle(cycle):
    return " -> ".join(cycle)


@pytest.fixture(scope="module")
def tree():
    modules = find_modules(ROOT)
    return modules, find_imports(modules)


def test_every_module_has_a_rank_and_every_import_exists(tree):
    modules, imports = tree
    unranked = sorted(name for name in modules if rank_of(name) is None)
    assert not unranked, f"modules missing from RANKS in {__file__}: {unranked}"
    missing = sorted(str(item) for item in imports if item.target not in modules)
    assert not missing, "imports of vsa_tf modules that do not exist:\n" + "\n".join(missing)


def test_no_import_cycles(tree):
    _, imports = tree
    cycles = find_cycles(imports)
    assert not cycles, "import cycles among vsa_tf modules:\n" + "\n".join(map(_format_cycle, cycles))


def test_no_jobs_module_imports_another_in_a_circle(tree):
    _, imports = tree
    jobs = [item for item in imports if item.source.startswith("vsa_tf.jobs") and item.target.startswith("vsa_tf.jobs")]
    cycles = find_cycles(jobs)
    assert not cycles, "vsa_tf.jobs modules importing each other in a circle:\n" + "\n".join(map(_format_cycle, cycles))


def test_no_upward_imports(tree):
    _, imports = tree
    upward = [f"{item}: rank {rank_of(item.source)} imports rank {rank_of(item.target)}" for item in upward_imports(imports)]
    assert not upward, "imports against the layering (see RANKS):\n" + "\n".join(upward)


def test_function_level_imports_only_in_the_command_line(tree):
    _, imports = tree
    inside = [str(item) for item in disallowed_function_imports(imports)]
    assert not inside, (
        "imports of vsa_tf modules inside functions, outside vsa_tf/commands and vsa_tf/cli.py "
        "(import at module level; a cycle this hides must be broken instead):\n" + "\n".join(inside)
    )


# The graph code on a fake vsa_tf written to tmp_path.


def _write_package(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


CLEAN_TREE = {
    "vsa_tf/__init__.py": "__version__ = '0'\n",
    "vsa_tf/data/__init__.py": "",
    "vsa_tf/data/text.py": "PAD_ID = 0\n",
    "vsa_tf/layers/__init__.py": "from .brnn import Encoder\n",
    "vsa_tf/layers/brnn.py": "from vsa_tf.data import text\nfrom vsa_tf.data.text import PAD_ID\n\nclass Encoder:\n    pass\n",
    "vsa_tf/models/__init__.py": "",
    "vsa_tf/models/model.py": "import vsa_tf.layers.brnn\nfrom vsa_tf.layers import Encoder\nfrom vsa_tf import __version__\n",
    "vsa_tf/commands/__init__.py": "",
    "vsa_tf/commands/train.py": "def handler():\n    from vsa_tf.models import model\n",
}


def test_imports_resolve_to_modules_and_packages(tmp_path):
    _write_package(tmp_path, CLEAN_TREE)
    modules = find_modules(str(tmp_path))
    assert sorted(modules) == [
        "vsa_tf", "vsa_tf.commands", "vsa_tf.commands.train", "vsa_tf.data", "vsa_tf.data.text", "vsa_tf.layers",
        "vsa_tf.layers.brnn", "vsa_tf.models", "vsa_tf.models.model",
    ]
    edges = [(item.source, item.target, item.in_function) for item in find_imports(modules)]
    assert edges == [
        ("vsa_tf.commands.train", "vsa_tf.models.model", True),
        ("vsa_tf.layers", "vsa_tf.layers.brnn", False),  # relative: `from .brnn import Encoder`
        ("vsa_tf.layers.brnn", "vsa_tf.data.text", False),  # `from vsa_tf.data import text`: a module
        ("vsa_tf.layers.brnn", "vsa_tf.data.text", False),  # `from vsa_tf.data.text import PAD_ID`
        ("vsa_tf.models.model", "vsa_tf.layers.brnn", False),
        ("vsa_tf.models.model", "vsa_tf.layers", False),  # `Encoder` is a name in the package
        ("vsa_tf.models.model", "vsa_tf", False),
    ]


def test_clean_tree_passes(tmp_path):
    _write_package(tmp_path, CLEAN_TREE)
    imports = find_imports(find_modules(str(tmp_path)))
    assert find_cycles(imports) == []
    assert upward_imports(imports) == []
    assert disallowed_function_imports(imports) == []


def test_a_cycle_is_reported_as_a_chain(tmp_path):
    _write_package(tmp_path, {
        **CLEAN_TREE,
        "vsa_tf/data/text.py": "def load():\n    from vsa_tf.data import readers\n",
        "vsa_tf/data/readers.py": "from vsa_tf.data import boxes\n",
        "vsa_tf/data/boxes.py": "import vsa_tf.data.text\n",
    })
    imports = find_imports(find_modules(str(tmp_path)))
    assert find_cycles(imports) == [["vsa_tf.data.boxes", "vsa_tf.data.text", "vsa_tf.data.readers", "vsa_tf.data.boxes"]]
    assert [str(item) for item in disallowed_function_imports(imports)] == [
        "vsa_tf.data.text -> vsa_tf.data.readers (line 2, inside a function)"
    ]


def test_an_upward_import_is_reported(tmp_path):
    _write_package(tmp_path, {
        **CLEAN_TREE,
        "vsa_tf/data/text.py": "from vsa_tf.models import model\n",
        "vsa_tf/jobs/__init__.py": "",
        "vsa_tf/jobs/train.py": "",
        "vsa_tf/layers/brnn.py": "import vsa_tf.jobs.train\n",
    })
    imports = find_imports(find_modules(str(tmp_path)))
    assert [str(item) for item in upward_imports(imports)] == [
        "vsa_tf.data.text -> vsa_tf.models.model (line 1, module level)",
        "vsa_tf.layers.brnn -> vsa_tf.jobs.train (line 1, module level)",
    ]
    assert find_cycles(imports) == []  # brnn no longer imports data.text: upward, but not circular
