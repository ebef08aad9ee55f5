"""The firmware's import graph has no cycle (issue 14), counting the imports inside functions
(the import-and-drop set-up modules, the modules loaded on first use) and __import__ of a
constant name: a module that a lazily imported module imports back is a cycle all the same,
for whoever reads the code."""
import ast

from conftest import ROOT

FIRMWARE = ROOT / "firmware"


def import_graph():
    """{module: the firmware modules it imports anywhere in its text}."""
    names = {p.stem for p in FIRMWARE.glob("*.py")}
    graph = {}
    for path in FIRMWARE.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                deps.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                deps.add(node.args[0].value)
        graph[path.stem] = deps & names - {path.stem}
    return graph


def find_cycle(graph):
    """One cycle as a list of modules (first == last), or None."""
    state = {}          # module: 1 on the path being walked, 2 done

    def walk(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = walk(dep, path + [dep])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = walk(start, [start])
            if found:
                return found
    return None


def test_the_finder_sees_a_cycle():
    # the check itself can fail: a lazy import back, as shedsetup's of shed once was
    assert find_cycle({"shed": {"shedsetup"}, "shedsetup": {"shed"}}) == \
        ["shed", "shedsetup", "shed"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_firmware():
    graph = import_graph()
    assert len(graph) > 40 and "shedsetup" in graph["shed"], sorted(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_every_long_module_says_why():
    # issue 14: a module over ~500 lines carries a sentence that says why it is one module
    long = {p.name: p.read_text() for p in FIRMWARE.glob("*.py")
            if p.read_text().count("\n") > 500}
    assert long, "no module over 500 lines: the check is idle"
    silent = [name for name, text in long.items() if "Over 500 lines because" not in text]
    assert not silent, "over 500 lines without saying why: %s" % silent


def _app_fields():
    """The fields App.__init__ declares (self.x = ..., chained assignments too)."""
    tree = ast.parse((FIRMWARE / "app.py").read_text())
    init = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                and n.name == "__init__")
    fields = set()
    for node in ast.walk(init):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and getattr(target.value, "id", "") == "self":
                    fields.add(target.attr)
    return fields


def test_the_system_object_has_fixed_fields():
    # issue 14: App is not an attribute bag. Every field any module sets on it (app.x = ...,
    # self.x = ... inside App) is declared in App.__init__, with what builds it.
    fields = _app_fields()
    assert {"controller", "mqtt", "grid", "web"} <= fields, sorted(fields)
    undeclared = []
    for path in FIRMWARE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for t in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    owner = getattr(getattr(t, "value", None), "id", None)
                    if isinstance(t, ast.Attribute) and (
                            owner == "app" or (owner == "self" and path.name == "app.py")) \
                            and t.attr not in fields:
                        undeclared.append("%s:%d app.%s" % (path.name, t.lineno, t.attr))
    assert not undeclared, "set on App but not declared in App.__init__: %s" % undeclared
