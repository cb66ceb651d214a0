"""convert_tfrecord.py: layouts, sharding, resume, skipped images, --ImageTypes and --verify."""
import glob
import json
import os
import re
import shutil
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

import convert_tfrecord
import dataset
from errors import UsageError
from helpers import error_line, run_script, start_script
from tools import synthetic


def read_examples(out, partition):
    files = sorted(glob.glob(dataset.record_pattern(out, partition)))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files)]


def manifest(out):
    with open(os.path.join(out, 'manifest.json')) as f:
        return json.load(f)


def test_official_layout_features(celeba_root, records):
    root, bboxes = celeba_root
    m = manifest(records)
    assert {p: m['partitions'][p]['records'] for p in dataset.PARTITIONS} == \
        {'train': 22, 'val': 7, 'test': 7}
    assert all(e['complete'] and e['settings']['layout'] == 'official'
               for e in m['partitions'].values())
    examples = read_examples(records, 'val')
    f = examples[0].features.feature
    name = f['image/img_celeba/filename'].bytes_list.value[0].decode()
    assert f['image/img_align_celeba_png/filename'].bytes_list.value[0].decode() == \
        name.replace('.jpg', '.png')
    assert list(f['image/img_celeba/bbox'].float_list.value) == list(bboxes[name])
    assert set(f['image/Attr'].float_list.value) <= {0.0, 1.0}
    assert len(f['image/Attr'].float_list.value) == 40
    assert len(f['image/Landmarks'].float_list.value) == 10
    assert len(f['image/LandmarksAlign'].float_list.value) == 10
    assert f['image/ID'].int64_list.value[0] > 0
    with open(os.path.join(root, 'Img', 'img_celeba', name), 'rb') as jpg:
        assert f['image/img_celeba/encoded'].bytes_list.value[0] == jpg.read()
    # sharded: names carry index and count
    shards = sorted(os.path.basename(p) for p in glob.glob(os.path.join(records, 'CelebA_val*')))
    assert len(shards) > 1 and shards[0] == 'CelebA_val.tfrecord-00000-of-{:05d}'.format(len(shards))


@pytest.mark.parametrize('layout,annotations', [
    ('torchvision', ['attr', 'bbox', 'identity', 'landmarks_align']),
    ('kaggle', ['attr', 'bbox', 'landmarks_align']),
])
def test_other_layouts(tmp_path, layout, annotations):
    root, out = str(tmp_path / 'src'), str(tmp_path / 'rec')
    synthetic.write_celeba(root, n=20, layout=layout)
    m = convert_tfrecord.convert(root, out, 'all', progress=False)
    entry = m['partitions']['train']
    assert entry['settings']['layout'] == layout
    assert entry['settings']['image_types'] == ['img_align_celeba']
    assert entry['settings']['annotations'] == annotations
    assert sum(m['partitions'][p]['records'] for p in dataset.PARTITIONS) == 20
    f = read_examples(out, 'train')[0].features.feature
    assert 'image/Landmarks' not in f and 'image/img_celeba/bbox' not in f
    assert ('image/ID' in f) == (layout == 'torchvision')
    images = list(dataset.load_celeba(out, 'all', 'img_align_celeba', False, 32))
    assert len(images) == 20 and images[0].shape == (32, 32, 3)


def test_kaggle_folder_found_inside_parent(tmp_path):
    # Kaggle's archive unpacks into a folder: pointing at its parent finds it one level down
    synthetic.write_celeba(str(tmp_path / 'celeba'), n=10, layout='kaggle')
    m = convert_tfrecord.convert(str(tmp_path), str(tmp_path / 'rec'), 'all', progress=False)
    assert m['partitions']['train']['settings']['layout'] == 'kaggle'
    assert sum(m['partitions'][p]['records'] for p in dataset.PARTITIONS) == 10


def test_image_types_subset_and_training_error(celeba_root, tmp_path):
    out = str(tmp_path / 'rec')
    convert_tfrecord.convert(celeba_root[0], out, 'val', image_types=['img_align_celeba'],
                             progress=False)
    f = read_examples(out, 'val')[0].features.feature
    assert 'image/img_align_celeba/encoded' in f
    assert 'image/img_celeba/encoded' not in f and 'image/img_celeba/bbox' not in f
    with pytest.raises(UsageError, match='do not hold img_celeba.*--ImageType=img_align_celeba'):
        dataset.load_celeba(out, 'val', 'img_celeba', True, 32)
    with pytest.raises(UsageError, match='--ImageTypes foo unknown: use img_celeba,'):
        convert_tfrecord.convert(celeba_root[0], out, 'val', image_types=['foo'], progress=False)


def test_bad_images_are_skipped_and_reported(tmp_path):
    root, out = str(tmp_path / 'src'), str(tmp_path / 'rec')
    synthetic.write_celeba(root, n=12, split=(1.0, 0.0))
    align = os.path.join(root, 'Img', 'img_align_celeba')
    with open(os.path.join(align, '000002.jpg'), 'r+b') as f:
        data = f.read()
        f.seek(0)
        f.truncate(len(data) // 2)  # truncated download
        f.write(data[:len(data) // 2])
    with open(os.path.join(root, 'Img', 'img_align_celeba_png', '000003.png'), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + os.urandom(300))  # corrupt
    os.remove(os.path.join(root, 'Img', 'img_celeba', '000004.jpg'))  # missing
    m = convert_tfrecord.convert(root, out, 'train', shard_mb=0.002, progress=False)
    entry = m['partitions']['train']
    assert entry['records'] == 9
    reasons = {s['image']: s['reason'] for s in entry['skipped']}
    assert set(reasons) == {'000002.jpg', '000003.jpg', '000004.jpg'}
    assert reasons['000002.jpg'].startswith('undecodable image')
    assert reasons['000003.jpg'].startswith('undecodable image')
    assert reasons['000004.jpg'].startswith('missing file')
    names = [e.features.feature['image/img_celeba/filename'].bytes_list.value[0]
             for e in read_examples(out, 'train')]
    assert len(names) == 9 and b'000002.jpg' not in names
    assert convert_tfrecord.verify(out, progress=False) == []


def test_zero_size_and_out_of_range_boxes(tmp_path):
    root, out = str(tmp_path / 'src'), str(tmp_path / 'rec')
    synthetic.write_celeba(root, n=6, split=(1.0, 0.0), wild_size=(96, 112))
    path = os.path.join(root, 'Anno', 'list_bbox_celeba.txt')
    lines = open(path).read().splitlines()
    lines[2] = '000001.jpg 10 10 0 50'  # zero width, like CelebA's 101283.jpg
    lines[3] = '000002.jpg 60 -20 80 60'  # reaches past the right and top edges
    lines[4] = '000003.jpg 200 300 40 40'  # wholly outside the 96x112 image
    open(path, 'w').write('\n'.join(lines) + '\n')
    m = convert_tfrecord.convert(root, out, 'train', progress=False)
    skipped = {s['image']: s['reason'] for s in m['partitions']['train']['skipped']}
    assert skipped['000001.jpg'].startswith('zero-size bbox')
    assert skipped['000003.jpg'].startswith('bbox [200, 300, 40, 40] outside the 96x112 image')
    assert len(skipped) == 2 and m['partitions']['train']['records'] == 4
    boxes = {e.features.feature['image/img_celeba/filename'].bytes_list.value[0]:
             list(e.features.feature['image/img_celeba/bbox'].float_list.value)
             for e in read_examples(out, 'train')}
    assert boxes[b'000002.jpg'] == [60, 0, 36, 40]
    faces = list(dataset.load_celeba(out, 'train', 'img_celeba', True, 32))
    assert len(faces) == 4


def test_resume_after_interruption_between_shards(celeba_root, tmp_path, monkeypatch):
    out, ref = str(tmp_path / 'rec'), str(tmp_path / 'ref')
    full = convert_tfrecord.convert(celeba_root[0], ref, 'all', shard_mb=0.005, progress=False)
    real = convert_tfrecord.write_shard_task
    calls = []

    def interrupted(index):
        path = convert_tfrecord.TASKS[index][0]
        if len(calls) == 4:  # a fifth shard is being written when Ctrl-C arrives
            with open(os.path.join(out, '.tmp-' + os.path.basename(path)), 'wb') as f:
                f.write(b'half a shard')
            raise KeyboardInterrupt
        calls.append(path)
        return real(index)

    monkeypatch.setattr(convert_tfrecord, 'write_shard_task', interrupted)
    with pytest.raises(UsageError, match='interrupted: finished shards are kept'):
        convert_tfrecord.convert(celeba_root[0], out, 'all', shard_mb=0.005, progress=False)
    assert not manifest(out)['partitions']['test']['complete']
    kept = {p: os.path.getmtime(p) for p in calls}
    monkeypatch.setattr(convert_tfrecord, 'write_shard_task', real)
    m = convert_tfrecord.convert(celeba_root[0], out, 'all', shard_mb=0.005, progress=False)
    assert {p: os.path.getmtime(p) for p in calls} == kept  # finished shards were not redone
    assert not glob.glob(os.path.join(out, '.tmp-*'))
    for part in dataset.PARTITIONS:
        assert m['partitions'][part]['records'] == full['partitions'][part]['records']
        assert m['partitions'][part]['complete']
        names = [e.features.feature['image/img_celeba/filename'].bytes_list.value[0]
                 for e in read_examples(out, part)]
        assert len(names) == len(set(names)) == full['partitions'][part]['records']
    # --overwrite redoes every shard
    convert_tfrecord.convert(celeba_root[0], out, 'all', shard_mb=0.005, overwrite=True,
                             progress=False)
    assert all(os.path.getmtime(p) > kept[p] for p in calls)


@pytest.mark.slow
def test_sigkill_then_rerun_cli(tmp_path):
    root, out = str(tmp_path / 'src'), str(tmp_path / 'rec')
    synthetic.write_celeba(root, n=120, split=(1.0, 0.0), wild_size=(48, 48), align_size=(32, 40))
    args = ['--DatasetPath=' + root, '--TFRecordPath=' + out, '--Partition=train',
            '--shard_mb=0', '--workers=1']
    proc = start_script('convert_tfrecord.py', args, str(tmp_path))
    try:  # killed once its first shard is written, of 120 (one an image)
        deadline = time.time() + 120
        while not glob.glob(os.path.join(out, 'CelebA_train.tfrecord-*')):
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not manifest(out)['partitions']['train']['complete']
    result = run_script('convert_tfrecord.py', args, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'resuming:' in result.stderr
    names = [e.features.feature['image/img_celeba/filename'].bytes_list.value[0]
             for e in read_examples(out, 'train')]
    assert len(names) == len(set(names)) == 120
    assert convert_tfrecord.verify(out, progress=False) == []
    entry = manifest(out)['partitions']['train']
    assert entry['records'] == 120 and entry['complete'] is True


@pytest.mark.slow
def test_verify_catches_damaged_and_missing_shards(records, tmp_path):
    import shutil
    out = str(tmp_path / 'rec')
    shutil.copytree(records, out)
    assert convert_tfrecord.verify(out, progress=False) == []
    shard = sorted(glob.glob(os.path.join(out, 'CelebA_train.tfrecord-*')))[1]
    data = bytearray(open(shard, 'rb').read())
    data[len(data) // 2] ^= 0xFF
    open(shard, 'wb').write(bytes(data))
    os.remove(sorted(glob.glob(os.path.join(out, 'CelebA_val.tfrecord-*')))[0])
    bad = run_script('convert_tfrecord.py', ['--verify', '--TFRecordPath=' + out], str(tmp_path))
    assert 'problem(s) in' in error_line(bad)
    assert os.path.basename(shard) + ': record 0 is damaged' in bad.stderr
    assert 'CelebA_val.tfrecord-00000-of-' in bad.stderr and 'listed in the manifest but missing' \
        in bad.stderr
    assert 'MISMATCH' in bad.stdout


def test_a_cut_or_empty_shard_is_named_in_training_and_rewritten_by_a_rerun(celeba_root, records,
                                                                           tmp_path, caplog):
    out = str(tmp_path / 'rec')
    shutil.copytree(records, out)
    shards = sorted(glob.glob(dataset.record_pattern(out, 'train')))
    before = open(shards[1], 'rb').read()
    open(shards[1], 'wb').close()  # zero bytes
    os.truncate(shards[2], 50)
    os.remove(shards[3])
    source = dataset.source('img_align_celeba', 32, partition='train', tfrecord_dir=out)
    with pytest.raises(UsageError, match=re.escape(shards[1]) + r' is 0 bytes, not the \d+ the '
                       r'converter wrote \(1 records\): run the conversion that made it again'):
        source.load()
    convert_tfrecord.convert(celeba_root[0], out, 'all', shard_mb=0.01, progress=False)
    assert open(shards[1], 'rb').read() == before and os.path.exists(shards[3])
    assert caplog.text.count('is missing or not as it was written (cut short?)') == 3
    assert convert_tfrecord.verify(out, progress=False) == []
    assert source.load()[1] == 22


def test_settings_change_needs_overwrite(celeba_root, tmp_path):
    out = str(tmp_path / 'rec')
    convert_tfrecord.convert(celeba_root[0], out, 'test', progress=False)
    with pytest.raises(UsageError, match='made with other settings.*--overwrite'):
        convert_tfrecord.convert(celeba_root[0], out, 'test', image_types=['img_align_celeba'],
                                 progress=False)
    m = convert_tfrecord.convert(celeba_root[0], out, 'test', image_types=['img_align_celeba'],
                                 overwrite=True, progress=False)
    assert m['partitions']['test']['settings']['image_types'] == ['img_align_celeba']


def test_malformed_annotation_row_names_file_and_line(tmp_path):
    root = str(tmp_path / 'src')
    synthetic.write_celeba(root, n=6)
    path = os.path.join(root, 'Anno', 'list_landmarks_align_celeba.txt')
    lines = open(path).read().splitlines()
    lines[5] = '000004.jpg 12 x 33'
    open(path, 'w').write('\n'.join(lines) + '\n')
    with pytest.raises(UsageError, match='list_landmarks_align_celeba.txt line 6 is malformed.*'
                       'fix or re-download the file'):
        convert_tfrecord.convert(root, str(tmp_path / 'rec'), 'all', progress=False)


@pytest.mark.parametrize('row,message', [
    ('000002.jpg 72 94 221', 'line 4 is malformed (3 values'),
    ('000002.jpg 72 94 221 306 5', 'line 4 is malformed (5 values'),
    ('000002.jpg', 'line 4 is malformed (0 values'),
    ('000002.jpg 72 94 221 1.5', "line 4 is malformed (invalid literal for int() with base 10: '1.5'"),
    ('000002.jpg 72 94 221 99999999999999999999', 'could not be read'),  # past int64
])
def test_annotation_rows_parsed_or_named(tmp_path, row, message):
    path = str(tmp_path / 'list_bbox_celeba.txt')
    good = '2\nx_1 y_1 width height\n000001.jpg    95  71 226 313\n'
    with open(path, 'w') as f:
        f.write(good + '000002.jpg 72 94 221 306\r\n\n')  # CRLF and a blank line are fine
    assert convert_tfrecord.read_annotation(path, 'bbox') == {
        '000001.jpg': [95, 71, 226, 313], '000002.jpg': [72, 94, 221, 306]}
    with open(path, 'w') as f:
        f.write(good + row + '\n')
    with pytest.raises(UsageError, match=re.escape(message)):
        convert_tfrecord.read_annotation(path, 'bbox')


def test_png_check_finds_truncation_and_bad_header(tmp_path):
    data = synthetic.encode(np.zeros((12, 10, 3), np.uint8), 'png')
    assert convert_tfrecord.check_image(data, 'img_align_celeba_png') == (10, 12)
    with pytest.raises(ValueError, match='truncated'):
        convert_tfrecord.check_image(data[:-20], 'img_align_celeba_png')
    header = bytearray(data)
    header[18] ^= 1  # IHDR's width
    with pytest.raises(ValueError, match='bad CRC in chunk'):
        convert_tfrecord.check_image(bytes(header), 'img_align_celeba_png')


def test_incomplete_annotation_file(tmp_path):
    root = str(tmp_path / 'src')
    synthetic.write_celeba(root, n=6)
    path = os.path.join(root, 'Anno', 'list_attr_celeba.txt')
    lines = open(path).read().splitlines()
    open(path, 'w').write('\n'.join(lines[:-2]) + '\n')
    with pytest.raises(UsageError, match='list_attr_celeba.txt declares 6 images on line 1 but has 4'):
        convert_tfrecord.convert(root, str(tmp_path / 'rec'), 'all', progress=False)


@pytest.mark.parametrize('make,message', [
    (lambda p: None, 'does not exist: point it at the CelebA folder'),
    (lambda p: os.makedirs(p), 'holds no pictures'),  # no CelebA files: a folder, but empty
    (lambda p: os.makedirs(os.path.join(p, 'Anno')), 'has no image folder'),
    (lambda p: open(p, 'w').close(), 'is a file: point it at the folder'),
])
def test_bad_dataset_path(tmp_path, make, message):
    root = str(tmp_path / 'src')
    make(root)
    with pytest.raises(UsageError, match=message):
        convert_tfrecord.convert(root, str(tmp_path / 'rec'), 'all', progress=False)


def test_verify_without_manifest(tmp_path):
    with pytest.raises(UsageError, match='has no manifest.json: convert into it first'):
        convert_tfrecord.verify(str(tmp_path), progress=False)
