"""Your own pictures and CIFAR-10: folder conversion, training on it, and the CIFAR-10 readers."""
import io
import json
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import arrays
import convert_tfrecord
import csv_log
import dataset
from errors import UsageError
from helpers import run_script, train_in_process
import records
from tools import synthetic

# one worker runs this file's tests, which share expensive runs (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('folder')


@pytest.fixture(scope='session')
def pictures(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('pictures') / 'my_images')
    return root, synthetic.write_folder(root)


@pytest.fixture(scope='session')
def folder_records(pictures, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('records') / 'my_images')
    return out, convert_tfrecord.convert(pictures[0], out, 'all', shard_mb=0.001, progress=False)


def records_of(out):
    examples = []
    for path in sorted(tf.io.gfile.glob(dataset.record_pattern(out, 'train'))):
        examples += [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    return examples


def test_a_plain_folder_is_detected_and_every_picture_converted(pictures, folder_records):
    files = pictures[1]
    out, manifest = folder_records
    entry = manifest['partitions']['train']
    assert list(manifest['partitions']) == ['train'] and entry['complete']
    assert entry['settings']['layout'] == 'folder'  # no --layout needed
    assert entry['records'] == sum(reason is None for reason in files.values()) == 10
    # each skip with its reason; hidden files and .DS_Store are not even tried
    skipped = {s['image']: s['reason'] for s in entry['skipped']}
    assert set(skipped) == {f for f, reason in files.items() if reason}
    for name, reason in skipped.items():
        assert files[name] in reason
    assert entry['settings']['labels'] == {'': 0, 'cats': 1, 'dogs': 2}
    assert entry['smaller_than'] == {'32': 2, '64': 10, '128': 10}  # shorter sides 20 and 30
    examples = {e.features.feature['image/folder/filename'].bytes_list.value[0].decode(): e
                for e in records_of(out)}
    assert set(examples) == {f for f, reason in files.items() if reason is None}
    label = {name: e.features.feature['image/folder/label'].int64_list.value[0]
             for name, e in examples.items()}
    assert label['top.jpg'] == 0 and label['cats/deeper/c.webp'] == 1 and label['dogs/d.bmp'] == 2
    # JPEG and 8-bit RGB PNG are stored as they are; the others become RGB PNG
    encoded = {n: e.features.feature['image/folder/encoded'].bytes_list.value[0]
               for n, e in examples.items()}
    with open(os.path.join(pictures[0], 'cats', 'a.jpg'), 'rb') as f:
        assert encoded['cats/a.jpg'] == f.read()
    for name in ('cats/deeper/c.webp', 'dogs/e_cmyk.jpg', 'dogs/f_gray.jpg', 'dogs/g_16bit.png',
                 'dogs/h_palette.gif', 'dogs/i.tiff', 'dogs/d.bmp'):
        with Image.open(io.BytesIO(encoded[name])) as img:
            assert (img.format, img.mode) == ('PNG', 'RGB'), name
    # a 16-bit picture keeps its tones: its top 8 bits
    with Image.open(os.path.join(pictures[0], 'dogs', 'g_16bit.png')) as img:
        want = (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
    with Image.open(io.BytesIO(encoded['dogs/g_16bit.png'])) as img:
        np.testing.assert_array_equal(np.asarray(img)[..., 0], want)
    assert convert_tfrecord.verify(out, progress=False) == []


def test_training_on_a_folder_uses_its_name(folder_records, tmp_path, caplog):
    out, _ = folder_records
    run = train_in_process(tmp_path, ImageType='folder', TFRecordPath=out, epochs=1,
                           steps_per_epoch=2, BATCH_SIZE=4, seed=1)
    assert run.config.save_name == 'my_images-False' and run.n_images == 10
    assert '2 of the 10 images in {} are smaller than 32 px: they are upscaled'.format(out) \
        in caplog.text
    table = csv_log.read_loss_csv(str(tmp_path / 'logs' / 'my_images-False-loss.csv'))
    assert list(table['epoch']) == [0]
    with Image.open(tmp_path / 'plot' / 'my_images-False' / '001.png') as img:
        assert img.mode == 'RGB' and img.size == (276, 276)  # 138 px grids enlarged 2x
    images = np.stack(list(dataset.load_folder(out, 32).as_numpy_iterator()))
    assert images.shape == (10, 32, 32, 3) and images.min() >= -1 and images.max() <= 1


def test_interrupted_folder_conversion_resumes_to_the_same_records(pictures, folder_records,
                                                                     tmp_path, monkeypatch):
    out = str(tmp_path / 'rec')
    real = convert_tfrecord.write_shard_task
    calls = []

    def interrupted(index):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(index)
        return real(index)

    monkeypatch.setattr(convert_tfrecord, 'write_shard_task', interrupted)
    with pytest.raises(UsageError, match='interrupted: finished shards are kept'):
        convert_tfrecord.convert(pictures[0], out, 'all', shard_mb=0.001, progress=False)
    monkeypatch.setattr(convert_tfrecord, 'write_shard_task', real)
    manifest = convert_tfrecord.convert(pictures[0], out, 'all', shard_mb=0.001, progress=False)
    assert manifest['partitions']['train']['records'] == 10
    assert [e.SerializeToString() for e in records_of(out)] == \
        [e.SerializeToString() for e in records_of(folder_records[0])]


def test_no_readable_pictures_is_one_message_with_the_skip_list(tmp_path):
    root = tmp_path / 'src'
    root.mkdir()
    for i in range(300):
        (root / 'file{:03d}.txt'.format(i)).write_text('text')
    with pytest.raises(UsageError, match=r'none of the 300 files under .* is a picture that can be '
                       r'read \(first: file000.txt - undecodable image .*not an image'):
        convert_tfrecord.convert(str(root), str(tmp_path / 'rec'), 'all', progress=False)
    skipped = json.load(open(tmp_path / 'rec' / 'manifest.json'))['partitions']['train']['skipped']
    assert len(skipped) == 300


def test_exif_rotated_fifo_and_huge_pictures(tmp_path):
    root = tmp_path / 'src'
    root.mkdir()
    # a phone photo taken in portrait: stored 40 wide and 20 high, EXIF orientation 6 (turn 90
    # degrees clockwise to view); its top-left quarter red, the rest blue
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[...] = (0, 0, 255)
    pixels[:10, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[convert_tfrecord.ORIENTATION] = 6
    Image.fromarray(pixels).save(root / 'portrait.jpg', quality=100, exif=exif)
    Image.new('RGB', (30, 30), 'green').save(root / 'upright.jpg', exif=Image.Exif())
    Image.new('L', (3000, 1000)).save(root / 'huge_gray.png')  # 3 megapixels, decoded by Pillow
    Image.new('RGB', (2000, 1000)).save(root / 'huge_rgb.png')  # 2, stored as it is
    with open(root / 'huge_gray.png', 'rb') as f:
        data = f.read()
    (root / 'huge_cut.png').write_bytes(data[:len(data) // 2])
    os.mkfifo(str(root / 'pipe.jpg'))
    # the old converter waited for a writer on the FIFO for ever: one comes after 20 s, so that
    # it fails on the reason rather than hangs
    writer = threading.Timer(20, lambda: open(root / 'pipe.jpg', 'wb').close())
    writer.daemon = True
    writer.start()
    manifest = convert_tfrecord.convert(str(root), str(tmp_path / 'rec'), 'all', progress=False,
                                        max_pixels=1.5 * 10 ** 6)
    writer.cancel()
    entry = manifest['partitions']['train']
    kinds = {s['image']: s['kind'] for s in entry['skipped']}
    assert kinds == {'pipe.jpg': 'non-regular', 'huge_gray.png': 'too large',
                     'huge_rgb.png': 'too large', 'huge_cut.png': 'undecodable'}
    assert entry['records'] == 2 and entry['rotated'] == 1
    reasons = ' '.join(s['reason'] for s in entry['skipped'])
    assert '3000x1000 = 3.0 megapixels, over --max_megapixels=1.5' in reasons
    stored = {e.features.feature[records.filename_key('folder')].bytes_list.value[0].decode():
              tf.io.decode_image(e.features.feature[records.encoded_key('folder')].bytes_list.value[0])
              .numpy() for e in records_of(str(tmp_path / 'rec'))}
    portrait = stored['portrait.jpg']
    assert portrait.shape == (40, 20, 3)  # upright: 20 wide, 40 high
    # the red quarter, turned clockwise, is now the top-right one
    np.testing.assert_allclose(portrait[5, 15], (255, 0, 0), atol=40)
    np.testing.assert_allclose(portrait[5, 5], (0, 0, 255), atol=40)
    assert stored['upright.jpg'].shape == (30, 30, 3)


def test_symlink_loop_ends(tmp_path):
    root = tmp_path / 'src'
    (root / 'a').mkdir(parents=True)
    Image.new('RGB', (40, 40), 'red').save(root / 'a' / 'x.png')
    os.symlink(str(root), str(root / 'a' / 'loop'))  # a/loop -> src: would recurse forever
    os.symlink(str(root / 'a'), str(root / 'again'))
    manifest = convert_tfrecord.convert(str(root), str(tmp_path / 'rec'), 'all', progress=False)
    assert manifest['partitions']['train']['records'] == 1


def test_layout_folder_forces_a_celeba_folder_to_be_pictures(tmp_path):
    root = str(tmp_path / 'celeba')
    synthetic.write_celeba(root, n=4)
    manifest = convert_tfrecord.convert(root, str(tmp_path / 'rec'), 'all', progress=False,
                                        layout='folder')
    entry = manifest['partitions']['train']
    assert entry['settings']['layout'] == 'folder'
    assert entry['records'] == 12  # the three image folders' pictures; the annotation files skipped
    assert len(entry['skipped']) == 6


def write_cifar_tarball(path, n=40):
    """A cifar-10-python.tar.gz in the official layout with n images per batch file."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
    with tarfile.open(path, 'w:gz') as tar:
        for i in range(5):
            rows = images[i * n:(i + 1) * n].transpose(0, 3, 1, 2).reshape(n, 3072)
            data = pickle.dumps({b'data': rows, b'labels': list(range(n))})
            info = tarfile.TarInfo('cifar-10-batches-py/data_batch_{}'.format(i + 1))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return images


def test_cifar10_tarball_reads_and_trains(tmp_path):
    path = str(tmp_path / 'cifar-10-python.tar.gz')
    images = write_cifar_tarball(path)
    np.testing.assert_array_equal(arrays.read_cifar10(path), images)
    first = next(iter(dataset.load_cifar10(path, 32))).numpy()
    np.testing.assert_allclose(first, (images[0] - 127.5) / 127.5, atol=1e-6)
    assert next(iter(dataset.load_cifar10(path, 64))).shape == (64, 64, 3)
    run = train_in_process(tmp_path, ImageType='cifar10', cifar_path=path, epochs=1,
                           steps_per_epoch=2, seed=1)
    assert run.config.save_name == 'cifar10-False' and run.n_images == 200
    with Image.open(tmp_path / 'plot' / 'cifar10-False' / '001.png') as img:
        assert img.mode == 'RGB'
    np.savez(tmp_path / 'cifar.npz', x_train=images[:7], y_train=np.zeros(7))
    assert arrays.read_cifar10(str(tmp_path / 'cifar.npz')).shape == (7, 32, 32, 3)
    with pytest.raises(UsageError, match='holds no cifar-10-batches-py/data_batch'):
        with tarfile.open(tmp_path / 'empty.tar.gz', 'w:gz'):
            pass
        arrays.read_cifar10(str(tmp_path / 'empty.tar.gz'))


class RunsCode:
    """Unpickled, it would run a shell command that writes a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, ('touch ' + self.marker,)


def test_a_cifar_file_that_would_run_code_is_refused_unrun(tmp_path):
    marker = str(tmp_path / 'ran')
    for name, payload in (('data_batch_1', RunsCode(marker)),  # the whole pickle, or inside the dict
                          ('data_batch_2', {b'data': RunsCode(marker), b'labels': [0]})):
        path = str(tmp_path / (name + '.tar.gz'))
        with tarfile.open(path, 'w:gz') as tar:
            data = pickle.dumps(payload)
            info = tarfile.TarInfo('cifar-10-batches-py/' + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        with pytest.raises(UsageError, match='could not be read as CIFAR-10.*posix.system, which '
                                             'no CIFAR-10 batch holds'):
            arrays.read_cifar10(path)
        assert not os.path.exists(marker)


def write_cifar_binary(path, images, extra=()):
    """A cifar-10-binary.tar.gz of images in two batch files, then (name, bytes) extra members."""
    rows = np.concatenate([np.full((len(images), 1), 7, np.uint8),
                           images.transpose(0, 3, 1, 2).reshape(-1, 3072)], axis=1)
    half = len(images) // 2
    members = [('data_batch_1.bin', rows[:half].tobytes()),
               ('data_batch_2.bin', rows[half:].tobytes())] + list(extra)
    with tarfile.open(path, 'w:gz') as tar:
        for name, data in members:
            info = tarfile.TarInfo('cifar-10-batches-bin/' + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_cifar10_binary_version_reads(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    path = str(tmp_path / 'cifar-10-binary.tar.gz')
    write_cifar_binary(path, images)
    np.testing.assert_array_equal(arrays.read_cifar10(path), images)
    write_cifar_binary(path, images, [('data_batch_3.bin', bytes(100))])  # cut short
    with pytest.raises(UsageError, match='data_batch_3.bin is 100 bytes, not whole records'):
        arrays.read_cifar10(path)


@pytest.mark.slow
def test_folder_cli_in_parallel_names_skips_and_matches_one_process(pictures, folder_records,
                                                                    tmp_path):
    result = run_script('convert_tfrecord.py', ['--DatasetPath=' + pictures[0], '--workers=2',
                                                '--shard_mb=0.001', '--TFRecordPath=' +
                                                str(tmp_path / 'rec')], str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'folder layout' in result.stderr
    assert 'train:      10 records' in result.stdout and 'skipped dogs/notes.jpg' in result.stdout
    assert '(2 undecodable)' in result.stdout
    # two worker processes write the very records of one (folder_records): the same Examples,
    # byte for byte with their features in one order (a process may write a map in another)
    parallel = [e.SerializeToString(deterministic=True) for e in records_of(str(tmp_path / 'rec'))]
    assert len(parallel) == 10
    assert parallel == [e.SerializeToString(deterministic=True)
                        for e in records_of(folder_records[0])]
    with pytest.raises(UsageError, match='--DatasetPath .*manifest.json is a file: point it at '
                                         'the folder'):
        convert_tfrecord.convert(str(tmp_path / 'rec' / 'manifest.json'), 'x', 'all')
