"""What the tests share: small in-process training runs, and running the entry points as processes
(tests that need a process are marked slow). Fixtures are in conftest.py."""
import os
import signal
import subprocess
import sys

import config
import dataset
import hooks
import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a small, fast training configuration used by most runs
# (networks an eighth of the seed's width: the same layers, 2% of the weights)
SMALL = ['--DisInSize=32', '--filters=128', '--BATCH_SIZE=8', '--steps_per_epoch=3',
         '--notensorboard']
SMALL_CONFIG = dict(DisInSize=32, filters=128, BATCH_SIZE=8, steps_per_epoch=3, tensorboard=False)


def small_config(folder, **changes):
    """A Config for a small 32x32 run whose logs, models and plots go under folder."""
    folder = str(folder)
    settings = dict(SMALL_CONFIG, LOG_PATH=os.path.join(folder, 'logs'),
                    MODEL_PATH=os.path.join(folder, 'models'),
                    PLOT_PATH=os.path.join(folder, 'plot'))
    settings.update(changes)
    return config.TrainConfig(**settings)


def quick_start_settings(**changes):
    """The config.TrainConfig fields of the README's quick start (dataset.QUICK_START), with changes."""
    settings = {}
    for arg in dataset.QUICK_START[1:]:
        name, value = arg[2:].split('=', 1)
        default = getattr(config.TrainConfig, name)
        settings[name] = (type(default) if default is not None else float)(value) if value \
            else value
    settings.update(changes)
    return settings


def train_in_process(folder, extra_hooks=(), **changes):
    """Run a small training in this process; returns its trainer.RunState."""
    return trainer.train(small_config(folder, **changes), extra_hooks)


def csv_text(folder):
    """The loss CSV of an MNIST run in folder, as text."""
    return open(os.path.join(folder, 'logs', 'MNIST-False-loss.csv')).read()


def assert_same_checkpoints(a, b, save_name='MNIST-False', ignore=()):
    """The newest checkpoints of the runs in folders a and b hold the same tensors, bit for bit:
    networks, optimizers, step counters, RNG state, fixed noise, CSV rows and flags (but the save
    counter, which counts the saves of one process, and the names in ignore)."""
    import numpy as np
    import tensorflow as tf
    readers = [tf.train.load_checkpoint(os.path.join(f, 'models', save_name, 'checkpoints'))
               for f in (a, b)]
    names = [sorted(n for n in r.get_variable_to_shape_map()
                    if not n.startswith(('_CHECKPOINTABLE', 'save_counter') + tuple(ignore)))
             for r in readers]
    assert names[0] == names[1] and len(names[0]) > 30
    for name in names[0]:
        np.testing.assert_array_equal(readers[0].get_tensor(name), readers[1].get_tensor(name),
                                      err_msg=name)


class StopAt(hooks.Hook):
    """Asks the run to stop after global step `step`, as Ctrl-C would."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, run, step, values):
        if step >= self.step and run.stop.signal is None:
            run.stop.signal = signal.SIGINT


def tiny_feature_model(path, channels=1):
    """A small untrained .keras model: images -> [16 features, 10 class probabilities]."""
    import keras
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input([16, 16, channels])
    x = keras.layers.Conv2D(8, 3, strides=2, activation='relu')(x)
    features = keras.layers.Dense(16, activation='tanh')(keras.layers.GlobalAveragePooling2D()(x))
    probabilities = keras.layers.Dense(10, activation='softmax')(features)
    keras.Model(inputs, [features, probabilities]).save(path)
    return path


def script_env():
    """Environment for entry-point subprocesses: quiet TensorFlow, no network for Keras."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1',
               CUDA_VISIBLE_DEVICES='-1')
    env['KERAS_HOME'] = env.get('KERAS_HOME_TEST', os.path.join(ROOT, '.pytest_cache', 'keras'))
    return env


def run_script(script, args, cwd, timeout=600, env=None):
    """Run python ROOT/script args in cwd (created if needed) and return the CompletedProcess."""
    os.makedirs(cwd, exist_ok=True)
    return subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env or script_env())


def start_script(script, args, cwd):
    """Start python ROOT/script args in cwd, stderr piped (for interruption tests)."""
    return subprocess.Popen([sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=script_env())


def error_line(result):
    """The one 'ERROR: ...' line a failing entry point printed, asserting there is no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert 'Traceback' not in result.stderr, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith('ERROR: ')]
    assert len(lines) == 1, result.stderr
    return lines[0]
