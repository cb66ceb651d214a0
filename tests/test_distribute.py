"""tf.distribute on CPU: one train step under MirroredStrategy (two logical devices), and a run of
main.py as two MultiWorkerMirroredStrategy processes, resumed, equal the same on one device."""
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf

import devices
from errors import UsageError
from helpers import ROOT, SMALL, script_env, train_in_process


# one worker runs this file's tests, which share an expensive fixture (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('distribute')


# every one-process variant in one process: a process costs more than a step. DiffAugment and
# the generator average are on in the distributed checks: augmentation is drawn for the global
# batch and sliced by replica, and the average is updated once per step
RECIPE = 'sync_bn+no_dropout+recipe'
VARIANTS = ['single+sync_bn+no_dropout', 'single+' + RECIPE, 'mirrored+' + RECIPE,
            'mirrored+no_dropout+recipe', 'single+' + RECIPE + '+disc',
            'mirrored+' + RECIPE + '+disc'] + [
    '{}+{}+disc+cond{}'.format(mode, RECIPE, how) for how in ('', '+projection')
    for mode in ('single', 'mirrored')]


@pytest.fixture(scope='session')
def steps():
    """{variant: its results} of one dist_check.py process."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'dist_check.py')] +
                            VARIANTS, capture_output=True, text=True, timeout=600,
                            env=script_env())
    assert result.returncode == 0, result.stderr
    return dict(zip(VARIANTS, json.loads(result.stdout.strip().splitlines()[-1])))


def assert_same_step(a, b):
    np.testing.assert_allclose(a['results'], b['results'], rtol=1e-4, atol=1e-5)
    assert a['iterations'] == b['iterations'] == 1
    # after the update too: gradients were all-reduced over the global batch
    np.testing.assert_allclose(a['g_kernel_sum'], b['g_kernel_sum'], rtol=1e-4)
    np.testing.assert_allclose(a['ema_kernel_sum'], b['ema_kernel_sum'], rtol=1e-4)
    np.testing.assert_allclose(a['d_kernel_sum'], b['d_kernel_sum'], rtol=1e-4)
    assert len(a['sn_u']) == len(b['sn_u'])
    for u, v in zip(a['sn_u'], b['sn_u']):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_mirrored_matches_single_device(steps):
    one, two = steps['single+' + RECIPE], steps['mirrored+' + RECIPE]
    assert two['replicas'] == 2
    assert_same_step(one, two)
    # with per-replica BatchNorm statistics the step differs: the check above can fail
    unsynced = steps['mirrored+no_dropout+recipe']
    assert not np.allclose(unsynced['results'], one['results'], rtol=1e-4)
    # with --spectral_norm --r1 --loss=hinge too: the power step is taken once, the penalty
    # averaged over the global batch
    disc = steps['mirrored+' + RECIPE + '+disc']
    assert_same_step(steps['single+' + RECIPE + '+disc'], disc)
    assert len(disc['sn_u']) == 5 and not np.allclose(disc['results'], two['results'])
    # and the augmentation acted
    assert not np.allclose(steps['single+sync_bn+no_dropout']['results'], one['results'],
                           rtol=1e-4)
    # conditional networks: each replica's images with their own labels
    for how in ('', '+projection'):
        cond = steps['mirrored+{}+disc+cond{}'.format(RECIPE, how)]
        assert_same_step(steps['single+{}+disc+cond{}'.format(RECIPE, how)], cond)
        assert not np.allclose(cond['results'], disc['results'])


def free_ports(count):
    """count distinct free ports: held open together while chosen, so that two never coincide
    (a port freed and chosen again before the workers bind it is the one race left)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(('127.0.0.1', 0))
        return [s.getsockname()[1] for s in sockets]


def two_workers(args, cwd, preempt_after=None):
    """Run main.py args as the two workers of a local MultiWorkerMirrored cluster; their exit
    statuses and output (stdout and stderr). preempt_after: text whose appearance in the chief's
    output (the one with a progress bar) sends worker 1 SIGTERM, as a preempted machine gets;
    the time from then to the last exit."""
    workers = ['localhost:{}'.format(port) for port in free_ports(2)]
    procs, logs = [], []
    for index in range(2):
        config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
        logs.append(open(os.path.join(cwd, '..', 'worker{}.log'.format(index)), 'w+'))
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, 'main.py'), '--strategy=multi_worker'] + args,
            cwd=cwd, stdout=logs[-1], stderr=subprocess.STDOUT, text=True,
            env=dict(script_env(), TF_CONFIG=json.dumps(config))))
    try:
        start = time.time()
        while preempt_after and time.time() - start < 300:
            if preempt_after in open(logs[0].name).read() or procs[1].poll() is not None:
                procs[1].send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
        start = time.time()
        statuses = [p.wait(timeout=300) for p in procs]
        return [(s, open(log.name).read()) for s, log in zip(statuses, logs)], time.time() - start
    finally:
        for p, log in zip(procs, logs):
            p.kill()
            log.close()


@pytest.mark.slow
def test_two_workers_equal_one_device_and_resume_from_the_same_step(mnist_npz, tmp_path):
    # a run trained one epoch on one device, resumed for a second by two processes
    # (MultiWorkerMirroredStrategy, TF_CONFIG) with DiffAugment and the generator average, one of
    # them preempted (SIGTERM) mid-epoch, both run again: every step equals the same run on one
    # device. The other worker used to restore from its own empty scratch folder (it trained from
    # step 0 beside the resumed chief and failed in a collective once the chief had left), and
    # to wait in a collective until it timed out when the other was preempted
    recipe = dict(ImageType='MNIST', mnist_path=mnist_npz, seed=5, steps_per_epoch=4,
                  sync_bn=True, dropout=0.0, ema=0.99, augment='color,translation,cutout')
    cwd = str(tmp_path / 'run')
    # the first epoch on one device (in this process), as a user moving to two machines
    train_in_process(cwd, epochs=1, **recipe)
    args = SMALL + ['--{}={}'.format(k, v) for k, v in recipe.items()] + ['--epochs=2']
    # both save the same step and stop, with the status of SIGTERM, which schedulers restart on
    results, seconds = two_workers(args, cwd, preempt_after='epoch 2/2:  25%')
    stopped = [re.search(r'Stopped by SIGTERM at epoch 2, step (\d) of 4', out) for _, out in results]
    assert [status for status, _ in results] == [128 + signal.SIGTERM] * 2, results
    assert stopped[0] and stopped[1] and stopped[0].group(1) == stopped[1].group(1), results
    assert seconds < 60
    step = 4 + int(stopped[0].group(1))
    results, _ = two_workers(args, cwd)
    for status, out in results:
        assert status == 0, out
        assert 'Resuming from models/MNIST-False/checkpoints/ckpt-{}'.format(step) in out
    # only the chief wrote into the run's folder
    assert sorted(os.listdir(os.path.join(cwd, 'models', 'MNIST-False', 'checkpoints'))) == [
        'checkpoint'] + ['ckpt-{}.{}'.format(n, kind) for n in sorted({4, step, 8}, key=str)
                         for kind in ('data-00000-of-00001', 'index')]
    one = train_in_process(tmp_path / 'one', epochs=2, **recipe)
    np.testing.assert_allclose(*[np.loadtxt(path, delimiter=',', skiprows=1) for path in (
        os.path.join(cwd, 'logs', 'MNIST-False-loss.csv'), one.files.loss_csv)], atol=1e-4)
    # after the updates too: gradients all-reduced over the global batch, the average updated
    # once a step
    readers = [tf.train.load_checkpoint(os.path.join(folder, 'models', 'MNIST-False',
                                                     'checkpoints'))
               for folder in (cwd, str(tmp_path / 'one'))]
    # G's and D's weights (kept through their optimizers) and the averaged generator's
    names = [n for n in readers[1].get_variable_to_shape_map()
             if re.match(r'([GD]_opt/_trainable_variables|generator_ema/_operations)/', n)]
    # (but the biases of D's convolutions before BatchNorm: BatchNorm cancels them, and Adam
    # turns their zero gradients' rounding noise into steps of 1e-5)
    compared = [name for name in names if np.abs(readers[1].get_tensor(name)).max() > 1e-3]
    assert len(compared) > 25
    for name in compared:
        np.testing.assert_allclose(readers[0].get_tensor(name), readers[1].get_tensor(name),
                                   rtol=1e-3, atol=1e-5, err_msg=name)


def test_only_the_chief_writes(mnist_npz, tmp_path, monkeypatch):
    def strategy(cluster, task_type, task_id):
        resolver = types.SimpleNamespace(task_type=task_type, task_id=task_id,
                                         cluster_spec=lambda: types.SimpleNamespace(
                                             as_dict=lambda: cluster))
        return types.SimpleNamespace(cluster_resolver=resolver)

    workers = {'worker': ['a:1', 'b:2']}
    assert devices.is_chief(strategy(workers, 'worker', 0))
    assert not devices.is_chief(strategy(workers, 'worker', 1))
    assert devices.is_chief(strategy(dict(workers, chief=['c:3']), 'chief', 0))
    assert not devices.is_chief(strategy(dict(workers, chief=['c:3']), 'worker', 0))
    assert devices.is_chief(types.SimpleNamespace())  # one process
    # a whole run as another worker: it trains and checkpoints (into its own scratch folder,
    # removed at the end), and leaves nothing in the run's folders
    monkeypatch.setattr(devices, 'is_chief', lambda _strategy: False)
    run = train_in_process(tmp_path, ImageType='MNIST', mnist_path=mnist_npz, epochs=1,
                           steps_per_epoch=2)
    assert int(run.step) == 2 and not os.path.exists(run.checkpoint.scratch)
    assert [files for _, _, files in os.walk(tmp_path) if files] == []


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv('TF_CONFIG', raising=False)
    with pytest.raises(UsageError, match='--strategy=multi_worker needs TF_CONFIG'):
        devices.make_strategy('multi_worker')
