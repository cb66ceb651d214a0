"""The code's rooms stay as docs/development.md describes them: each setting declared once in
config.py, the run's state built once, files of a readable size. Reads the source only."""
import ast
import dataclasses
import glob
import os

import pytest

import config
from helpers import ROOT

ENTRY_POINTS = {'main.py': config.TrainConfig, 'evaluate.py': config.EvalConfig,
                'generate.py': config.SampleConfig, 'convert_tfrecord.py': config.ConvertConfig,
                'plot_logs.py': config.PlotConfig, 'bench.py': config.BenchConfig}
SETTINGS = [f for cls in set(ENTRY_POINTS.values()) for f in dataclasses.fields(cls)]


def project_files():
    """Every non-test Python file of the project, by path relative to the root."""
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, '*.py'))
                  + glob.glob(os.path.join(ROOT, 'tools', '*.py')))


def tree(path):
    with open(os.path.join(ROOT, path)) as f:
        return ast.parse(f.read())


def strings(path):
    """The string constants of a file (adjacent literals are one constant)."""
    return [n.value for n in ast.walk(tree(path))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_each_setting_is_declared_once_in_config_and_defines_the_flags():
    names = {f.name for cls in (config.TrainConfig, config.EvalConfig, config.SampleConfig)
             for f in dataclasses.fields(cls)}
    texts = {path: strings(path) for path in project_files()}
    for field in SETTINGS:
        # its help text (its first literal, for those built from constants) is in one file only
        help_text = field.metadata['help']
        start = max((s for s in texts['config.py'] if s and help_text.startswith(s)), key=len)[:40]
        where = [p for p, found in texts.items() if any(s.startswith(start) for s in found)]
        assert where == ['config.py'], (field.name, where)
    for path in project_files():
        for node in ast.walk(tree(path)):
            # no flags of their own in the entry points (the tools in tools/ keep theirs) ...
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr.startswith('DEFINE_'):
                assert path.startswith('tools/') or path == 'config.py', (path, node.lineno)
            # ... and no second config class: fields named as settings, with defaults (the run's
            # state holds resolved values, with none; a DataSource's bbox is what callers pass)
            if isinstance(node, ast.ClassDef) and path != 'config.py':
                fields = {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)
                          and isinstance(n.target, ast.Name) and n.value is not None}
                assert len(fields & names) < 2, (path, node.name, fields & names)
    for script, cls in ENTRY_POINTS.items():
        source = open(os.path.join(ROOT, script)).read()
        assert 'config.define_flags(config.{}, __name__)'.format(cls.__name__) in source
        assert 'config.from_flags(config.{})'.format(cls.__name__) in source


def test_where_entry_points_share_a_flag_it_is_one_setting():
    # main.py's default wins: evaluate.py and generate.py take its ImageType, shape and paths
    # (bench.py's --filters is its own setting: the width of the timed steps)
    shared = {}
    for cls in set(ENTRY_POINTS.values()) - {config.BenchConfig}:
        for field in dataclasses.fields(cls):
            shared.setdefault(field.name, set()).add(id(field.metadata))
    for name in ('ImageType', 'DisInSize', 'noise_dim', 'filters', 'TFRecordPath', 'Partition',
                 'bbox', 'mnist_path', 'cifar_path', 'mixed_precision', 'feature_model',
                 'ref_samples', 'stats_dir', 'model', 'PLOT_PATH', 'DatasetPath'):
        assert len(shared[name]) == 1, name
    assert config.EvalConfig().ImageType == config.TrainConfig().ImageType == 'img_celeba'


def assigned_attributes(node, owner):
    """(attribute, line) of every `owner.attribute = ...` (or +=) inside node."""
    found = []
    for n in ast.walk(node):
        targets = n.targets if isinstance(n, ast.Assign) else [n.target] \
            if isinstance(n, (ast.AugAssign, ast.AnnAssign)) else []
        for t in [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) \
                    and t.value.id == owner:
                found.append((t.attr, n.lineno))
    return found


@pytest.mark.parametrize('path', ['trainer.py', 'hooks.py', 'checkpoints.py', 'run_files.py',
                                  'ema.py', 'interrupts.py'])
def test_no_attribute_is_created_outside_construction(path):
    for cls in [n for n in tree(path).body if isinstance(n, ast.ClassDef)]:
        methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)]
        made = {a for m in methods if m.name == '__init__' for a, _ in assigned_attributes(m, 'self')}
        for method in methods:
            for attribute, line in assigned_attributes(method, 'self'):
                assert attribute in made, '{}:{} {}.{} is made outside __init__'.format(
                    path, line, cls.name, attribute)


def test_the_loop_and_hooks_change_only_fields_of_the_run_state():
    import trainer
    fields = {f.name for f in dataclasses.fields(trainer.RunState)}
    for path in ('trainer.py', 'hooks.py'):
        for attribute, line in assigned_attributes(tree(path), 'run'):
            assert attribute in fields, '{}:{} run.{}'.format(path, line, attribute)


def test_files_stay_readable():
    lines = {p: sum(1 for _ in open(os.path.join(ROOT, p))) for p in project_files()}
    assert lines['utils.py'] < 200
    # the converter; and the settings, the pipelines and the metrics, which the conditional
    # classes, labels and accuracy joined
    assert [p for p, n in lines.items() if n > 500 and p not in (
        'config.py', 'dataset.py', 'metrics.py')] in ([], ['convert_tfrecord.py']), lines
    assert max(lines.values()) < 800, lines
