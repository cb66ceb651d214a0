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


# every one-process variant in one process: a process costs more than a step
VARIANTS = ['single+sync_bn+no_dropout', 'mirrored+sync_bn+no_dropout', 'mirrored+no_dropout',
            'single+sync_bn+no_dropout+recipe', 'mirrored+sync_bn+no_dropout+recipe']


@pytest.fixture(scope='session')
def steps():
    """{variant: its results} of one dist_check.py process."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'dist_check.py')] +
                            VARIANTS, capture_output=True, text=True, timeout=300,
                            env=script_env())
    assert result.returncode == 0, result.stderr
    return dict(zip(VARIANTS, json.loads(result.stdout.strip().splitlines()[-1])))


@pytest.fixture(scope='session')
def single(steps):
    return steps['single+sync_bn+no_dropout']


def assert_same_step(a, b):
    np.testing.assert_allclose(a['results'], b['results'], rtol=1e-4, atol=1e-5)
    assert a['iterations'] == b['iterations'] == 1
    # after the update too: gradients were all-reduced over the global batch
    np.testing.assert_allclose(a['g_kernel_sum'], b['g_kernel_sum'], rtol=1e-4)


@pytest.mark.slow
def test_mirrored_matches_single_device(single, steps):
    mirrored = steps['mirrored+sync_bn+no_dropout']
    assert mirrored['replicas'] == 2
    assert_same_step(single, mirrored)
    # with per-replica BatchNorm statistics the step differs: the check above can fail
    unsynced = steps['mirrored+no_dropout']
    assert not np.allclose(unsynced['results'], single['results'], rtol=1e-4)


@pytest.mark.slow
def test_mirrored_with_augment_and_ema_matches_single_device(single, steps):
    # DiffAugment's randomness is drawn for the global batch and sliced by replica, and the
    # average is updated once per step: two devices give the single device's step
    one = steps['single+sync_bn+no_dropout+recipe']
    two = steps['mirrored+sync_bn+no_dropout+recipe']
    assert two['replicas'] == 2
    assert_same_step(one, two)
    np.testing.assert_allclose(one['ema_kernel_sum'], two['ema_kernel_sum'], rtol=1e-4)
    assert not np.allclose(single['results'], one['results'], rtol=1e-4)  # augmentation acted


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_matches_single_device(single):
    workers = ['localhost:{}'.format(free_port()) for _ in range(2)]
    procs = []
    for index in range(2):
        config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
        env = dict(script_env(), TF_CONFIG=json.dumps(config))
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, 'tests', 'dist_check.py'),
             'multi_worker+sync_bn+no_dropout'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env))
    outputs = [p.communicate(timeout=300) for p in procs]
    for out, err in outputs:
        results, = json.loads(out.strip().splitlines()[-1])
        assert results['replicas'] == 2, err
        assert_same_step(single, results)


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv('TF_CONFIG', raising=False)
    with pytest.raises(UsageError, match='--strategy=multi_worker needs TF_CONFIG'):
        devices.make_strategy('multi_worker')
