"""tf.distribute on CPU: one train step under MirroredStrategy (two logical devices) and
MultiWorkerMirroredStrategy (two processes) equals the same step on one device."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import devices
from helpers import ROOT, script_env
from utils import UsageError


# one worker runs this file's tests, which share an expensive fixture (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('distribute')


# every one-process variant in one process: a process costs more than a step. DiffAugment and
# the generator average are on in the distributed checks: augmentation is drawn for the global
# batch and sliced by replica, and the average is updated once per step
RECIPE = 'sync_bn+no_dropout+recipe'
VARIANTS = ['single+sync_bn+no_dropout', 'single+' + RECIPE, 'mirrored+' + RECIPE,
            'mirrored+no_dropout+recipe']


@pytest.fixture(scope='session')
def steps():
    """{variant: its results} of one dist_check.py process."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'dist_check.py')] +
                            VARIANTS, capture_output=True, text=True, timeout=300,
                            env=script_env())
    assert result.returncode == 0, result.stderr
    return dict(zip(VARIANTS, json.loads(result.stdout.strip().splitlines()[-1])))


def assert_same_step(a, b):
    np.testing.assert_allclose(a['results'], b['results'], rtol=1e-4, atol=1e-5)
    assert a['iterations'] == b['iterations'] == 1
    # after the update too: gradients were all-reduced over the global batch
    np.testing.assert_allclose(a['g_kernel_sum'], b['g_kernel_sum'], rtol=1e-4)
    np.testing.assert_allclose(a['ema_kernel_sum'], b['ema_kernel_sum'], rtol=1e-4)


@pytest.mark.slow
def test_mirrored_matches_single_device(steps):
    one, two = steps['single+' + RECIPE], steps['mirrored+' + RECIPE]
    assert two['replicas'] == 2
    assert_same_step(one, two)
    # with per-replica BatchNorm statistics the step differs: the check above can fail
    unsynced = steps['mirrored+no_dropout+recipe']
    assert not np.allclose(unsynced['results'], one['results'], rtol=1e-4)
    # and the augmentation acted
    assert not np.allclose(steps['single+sync_bn+no_dropout']['results'], one['results'],
                           rtol=1e-4)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_matches_single_device(steps):
    workers = ['localhost:{}'.format(free_port()) for _ in range(2)]
    procs = []
    for index in range(2):
        config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
        env = dict(script_env(), TF_CONFIG=json.dumps(config))
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, 'tests', 'dist_check.py'),
             'multi_worker+' + RECIPE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env))
    outputs = [p.communicate(timeout=300) for p in procs]
    for out, err in outputs:
        results, = json.loads(out.strip().splitlines()[-1])
        assert results['replicas'] == 2, err
        assert_same_step(steps['single+' + RECIPE], results)


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv('TF_CONFIG', raising=False)
    with pytest.raises(UsageError, match='--strategy=multi_worker needs TF_CONFIG'):
        devices.make_strategy('multi_worker')
