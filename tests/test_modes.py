"""Speed modes: mixed precision (fp16 loss scaling, auto), XLA, cache, mirrored training."""
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import csv_log
import devices
from helpers import small_config, train_in_process
import hooks
import trainer


def run_mode(mnist_npz, folder, epochs=2, extra_hooks=(), **mode):
    """A 2-epoch MNIST run of 2 steps an epoch in the given mode, trained in this process."""
    settings = dict(ImageType='MNIST', mnist_path=mnist_npz, epochs=epochs, steps_per_epoch=2,
                    seed=4)
    settings.update(mode)
    run = train_in_process(folder, extra_hooks, **settings)
    table = csv_log.read_loss_csv(os.path.join(folder, 'logs', 'MNIST-False-loss.csv'))
    assert len(table['epoch']) == epochs
    assert all(np.all(np.isfinite(table[c])) for c in csv_log.CSV_COLUMNS[1:])
    with Image.open(os.path.join(folder, 'plot', 'MNIST-False', '{:03d}.png'.format(epochs))) as img:
        assert img.size == (276, 276) and img.mode == 'L'
    return run, tf.train.load_checkpoint(os.path.join(folder, 'models', 'MNIST-False',
                                                      'checkpoints'))


@pytest.mark.parametrize('mode', [dict(jit=True, mixed_precision='bf16'),
                                  dict(strategy='mirrored', cache=True, BATCH_SIZE=64,
                                       steps_per_epoch=0)])
@pytest.mark.slow
def test_mode_trains(mnist_npz, tmp_path, mode):
    run, _ = run_mode(mnist_npz, str(tmp_path), **mode)
    # the step is traced once for the whole run (XLA keeps shapes static)
    assert run.train_step.experimental_get_tracing_count() == 1
    # and ran as asked: compiled by XLA, in bf16
    library = run.train_step.get_concrete_function().graph.as_graph_def().library
    compiled = [f.signature.name for f in library.function if f.attr['_XlaMustCompile'].b]
    assert len(compiled) == (1 if mode.get('jit') else 0)
    assert all(name.startswith('__inference_train_step_') for name in compiled)
    dtype = 'bfloat16' if mode.get('mixed_precision') == 'bf16' else 'float32'
    assert {layer.compute_dtype for net in (run.Generator, run.Discriminator)
            for layer in net.layers[1:-1]} == {dtype}


class HugeLossScale(hooks.Hook):
    """Makes every fp16 step overflow, so that the LossScaleOptimizers skip it."""

    def on_train_begin(self, run):
        for opt in (run.G_opt, run.D_opt):
            opt.dynamic_scale.assign(2.0 ** 100)


def test_fp16_skipped_steps_still_advance_the_global_step(mnist_npz, tmp_path):
    # without XLA: fp16 CPU kernels are slow, but 2 small steps take seconds
    run, ckpt = run_mode(mnist_npz, str(tmp_path), epochs=1, extra_hooks=[HugeLossScale()],
                         mixed_precision='fp16')
    assert run.Generator.layers[2].compute_dtype == 'float16'
    # every update overflowed and was skipped, halving the loss scale each time...
    for opt in ('G_opt', 'D_opt'):
        assert ckpt.get_tensor(opt + '/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE') == 2.0 ** 98
    # ...so the optimizers' own counters stand still...
    assert int(run.G_opt.iterations) == int(run.D_opt.iterations) == 0
    # ...but the run's step, which numbers noise, checkpoints and TensorBoard points, moves on
    assert int(run.step) == 2 and ckpt.get_tensor('global_step/.ATTRIBUTES/VARIABLE_VALUE') == 2
    assert os.path.exists(tmp_path / 'models' / 'MNIST-False' / 'checkpoints' / 'ckpt-2.index')
    # and both learning rates follow it, not the optimizers' counters
    run.step.assign(2 * 10)  # first step of epoch 11 at 2 steps an epoch
    assert float(run.G_opt.learning_rate) == pytest.approx(2e-5)
    assert float(run.D_opt.learning_rate) == pytest.approx(2e-5)
    run.step.assign(2 * 10 - 1)
    assert float(run.G_opt.learning_rate) == pytest.approx(2e-4)


@pytest.mark.parametrize('gpus,flags,speedup,mode', [
    ([(9, 0)], [], None, 'bf16'),               # H100: bf16 tensor cores
    ([(8, 0), (8, 6)], [], None, 'bf16'),
    ([(7, 0)], [], None, 'fp16'),               # V100: fp16 only
    ([(6, 1)], [], None, 'none'),
    ([], ['avx512f', 'amx_bf16', 'avx512_bf16'], 2.5, 'bf16'),  # AMX: 1.6x fp32 in training
    ([], ['avx512f', 'avx512_bf16'], 1.9, 'bf16'),   # AMD host here: 1.3x fp32 in training
    ([], ['avx512f', 'avx512_bf16'], 0.6, 'none'),   # the host: 0.62x fp32
    ([], ['sse2', 'avx2'], None, 'none'),            # nothing to measure
])
def test_auto_precision_per_machine(gpus, flags, speedup, mode):
    def measure():
        assert speedup is not None, 'measured where no bf16 unit can help'
        return speedup
    chosen, reason = devices.auto_precision(gpus, flags, measure)
    assert chosen == mode and reason
    if speedup:
        assert '{:.2f}x fp32'.format(speedup) in reason


def test_conv_speedup_is_measured():
    assert 0.05 < devices.conv_speedup(repeats=1) < 20


def test_auto_precision_in_a_run(mnist_npz, tmp_path, caplog, monkeypatch):
    # the run uses what auto_precision chose (here made to choose bf16), and says why
    caplog.set_level(logging.INFO, logger='absl')
    monkeypatch.setattr(devices, 'auto_precision', lambda: ('bf16', 'a bf16 unit, 1.9x fp32'))
    run = trainer.build(small_config(tmp_path, ImageType='MNIST', mnist_path=mnist_npz,
                                     mixed_precision='auto'))
    assert '--mixed_precision=auto chose bf16: a bf16 unit, 1.9x fp32' in caplog.text
    assert run.precision == 'bf16' and run.Generator.layers[2].compute_dtype == 'bfloat16'
