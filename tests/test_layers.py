"""The project's layering holds (the same rules as ../shared/tools/layers.py, which CI may lack).

Layers, lowest first: models/ and data/ (no training, no torch in models) <-
train/ <- torch_twins/ <- main.py, benchmark.py, bench/, tools/. configs/ hold
values only. No import cycles; no module over 400 lines.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAYER = {
  'models': 0,
  'data': 0,
  'train': 1,
  'torch_twins': 2,
  'tools': 3,
  'bench': 3,
  'main': 3,
  'benchmark': 3,
}
CONFIG_MAY_IMPORT = (
  'ml_collections',
  'configs',
  '__future__',
  'typing',
  'collections',
  'dataclasses',
)


def _modules():
  mods = {}
  for path in sorted(ROOT.rglob('*.py')):
    parts = path.relative_to(ROOT).with_suffix('').parts
    if parts[0] in ('tests', '.venv', 'venv', 'build', 'workdirs', 'datasets') or parts[
      0
    ].startswith('.'):
      continue
    mods['.'.join(p for p in parts if p != '__init__')] = path
  return mods


def _imports(path, mods):
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      subs = [f'{node.module}.{a.name}' for a in node.names if f'{node.module}.{a.name}' in mods]
      yield from subs if len(subs) == len(node.names) else [node.module, *subs]


def _problems():
  mods = _modules()
  problems, graph = [], {m: set() for m in mods}
  for mod, path in mods.items():
    if len(path.read_text().splitlines()) > 400:
      problems.append(f'{path}: over 400 lines')
    top = mod.split('.')[0]
    for name in _imports(path, mods):
      target = name.split('.')[0]
      if top == 'configs' and target not in CONFIG_MAY_IMPORT:
        problems.append(f'{mod} imports {name} (configs hold values only)')
      if top == 'models' and target == 'torch':
        problems.append(f'{mod} imports torch')
      if top in LAYER and target in LAYER and target != top and LAYER[target] > LAYER[top]:
        problems.append(f'{mod} (layer {LAYER[top]}) imports {name} (layer {LAYER[target]})')
      if name in mods and name != mod and not mod.startswith(name + '.'):
        graph[mod].add(name)
  return problems, graph


def _cycle(graph):
  """One import cycle, if any (depth-first search)."""
  state, stack = {}, []

  def visit(node):
    state[node] = 'open'
    stack.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == 'open':
        return stack[stack.index(nxt) :] + [nxt]
      if nxt not in state and (found := visit(nxt)):
        return found
    state[node] = 'done'
    stack.pop()
    return None

  for node in sorted(graph):
    if node not in state and (found := visit(node)):
      return found
  return None


def test_layers_hold():
  problems, graph = _problems()
  assert problems == []
  assert _cycle(graph) is None, ' -> '.join(_cycle(graph))


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
  """The checker is not vacuous: an upward import and a cycle are found."""
  assert _cycle({'a': {'b'}, 'b': {'a'}}) == ['a', 'b', 'a']
  monkeypatch.setattr(
    pathlib.Path, 'read_text', lambda self: 'import train.loop\n' if 'models' in str(self) else ''
  )
  problems, _ = _problems()
  assert any('models' in p and 'imports train.loop' in p for p in problems)
