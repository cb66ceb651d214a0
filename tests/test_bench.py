"""bench.py and tools/bench_convert.py run end to end and report every figure (no timing is asserted)."""
import json
import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, run_script, script_env


def multiply_adds(f):
    """Multiply-adds of one 32x32 RGB image through D and G of width f, layer by layer."""
    d = (16 * 16 * 4 * 4 * 3 * (f // 4) + 8 * 8 * 4 * 4 * (f // 4) * (f // 2)
         + 4 * 4 * 4 * 4 * (f // 2) * f + 4 * 4 * f + 1)
    g = (4 * 4 * 100 * f + 4 * 4 * 4 * 4 * f * (f // 2) + 8 * 8 * 4 * 4 * (f // 2) * (f // 4)
         + 16 * 16 * 4 * 4 * (f // 4) * 3)
    return d, g


@pytest.mark.slow
def test_bench_reports_every_figure(tmp_path):
    result = run_script('bench.py', ['--modes=fp32,bf16', '--batch=8', '--size=32', '--steps=1',
                                     '--warmup=1', '--pipeline_batches=2', '--celeba_images=24',
                                     '--repeats=1', '--loops=1,2', '--loop_steps=2',
                                     '--inception_images=2', '--filters=128'], str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report['train_img_s']) == {'fp32', 'bf16'}
    assert report['reference_train_img_s'] == report['train_img_s']['fp32']
    # the modes ran at --filters=128, and the seed's width once more in fp32 for the ratio
    assert report['filters'] == 128 and report['seed_width_train_img_s'] > 0
    assert re.search(r'^--filters=128: [\d.]+ images/s in fp32, [\d.]+x the original 1024',
                     result.stdout, re.M)
    assert set(report['pipeline_img_s']) == {'mnist', 'mnist_cache', 'celeba_bbox',
                                             'celeba_bbox_cache', 'celeba_bbox_preresized'}
    assert report['preresized_pipeline_img_s'] == report['pipeline_img_s'][
        'celeba_bbox_preresized']
    assert report['preresized_vs_seed'] == pytest.approx(
        report['preresized_pipeline_img_s'] / report['reference_pipeline_img_s']['celeba_bbox'],
        rel=0.01)
    assert report['record_mb']['full'] > report['record_mb']['preresized'] > 0
    assert set(report['reference_pipeline_img_s']) == {'mnist', 'celeba_bbox'}
    rates = [*report['train_img_s'].values(), *report['pipeline_img_s'].values(),
             *report['reference_pipeline_img_s'].values()]
    assert all(rate > 0 for rate in rates)
    # forward, backward (2x) of G; of D on real and fake images (6x); the pass back through D for G
    d, g = multiply_adds(128)
    assert report['gflop_per_step'] == pytest.approx(8 * 2 * (3 * g + 7 * d) / 1e9, abs=0.0006)
    best = report['best_mode']
    assert report['train_img_s'][best] == max(report['train_img_s'].values())
    assert report['best_gflop_s'] == pytest.approx(
        report['train_img_s'][best] / 8 * report['gflop_per_step'], rel=0.01)
    assert 'input pipeline' in result.stdout and 'celeba_bbox_cache' in result.stdout
    assert report['auto_mode'] in ('fp32', 'bf16', 'fp16')
    faster = max(('fp32', 'bf16'), key=report['train_img_s'].get)
    assert report['auto_is_fastest'] == (report['auto_mode'] == faster)
    assert set(report['dispatch']) == {'1', '2'}
    assert all(row['img_s'] > 0 and row['ms_per_step'] > 0 for row in report['dispatch'].values())
    assert report['dispatch_host_ms_per_step'] == pytest.approx(
        report['dispatch']['1']['ms_per_step'] - report['dispatch']['2']['ms_per_step'], abs=0.02)
    assert report['inception_img_s'] > 0


@pytest.mark.slow
def test_bench_convert_reports_both_converters(tmp_path):
    work = tmp_path / 'work'
    # a development tool, run as a module from anywhere with the repository on the path
    result = subprocess.run([sys.executable, '-m', 'tools.bench_convert', '--images=24',
                             '--repeats=1', '--workers=2', '--shard_mb=0.5',
                             '--work_dir=' + str(work)], cwd=str(tmp_path), capture_output=True,
                            text=True, timeout=600, env=dict(script_env(), PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    assert re.search(r'^24 images, \d+ MB of source files', result.stdout, re.M)
    rows = re.findall(r'^(seed-style|convert_tfrecord\.py) .*\s([\d.]+)\s+([\d.]+)$',
                      result.stdout, re.M)
    assert [r[0] for r in rows] == ['seed-style', 'convert_tfrecord.py', 'convert_tfrecord.py']
    assert all(float(r[2]) > 0 for r in rows)
    assert re.search(r'^ratio: [\d.]+x$', result.stdout, re.M)
    # the last timed run (2 workers) is left in the work folder: every image in shards
    with open(os.path.join(work, 'out', 'manifest.json')) as f:
        entry = json.load(f)['partitions']['train']
    assert entry['records'] == 24 and entry['complete'] and entry['planned_shards'] > 2


@pytest.mark.slow
def test_bench_convert_folder_against_a_plain_loop(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'tools.bench_convert', '--folder', '--images=30',
                             '--repeats=1', '--workers=2', '--shard_mb=0.2',
                             '--work_dir=' + str(tmp_path / 'work')], cwd=str(tmp_path),
                            capture_output=True, text=True, timeout=600,
                            env=dict(script_env(), PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    assert re.search(r'^30 folder images, \d+ MB of source files', result.stdout, re.M)
    rows = re.findall(r'^(plain loop|convert_tfrecord\.py) .*\s([\d.]+)\s+([\d.]+)$',
                      result.stdout, re.M)
    assert [r[0] for r in rows] == ['plain loop', 'convert_tfrecord.py', 'convert_tfrecord.py']
    with open(os.path.join(tmp_path, 'work', 'out', 'manifest.json')) as f:
        entry = json.load(f)['partitions']['train']
    assert entry['records'] == 30 and entry['settings']['layout'] == 'folder'
