"""Run conversion and training on real images that this project does not ship (a separate check).

Real data that pip can install: scikit-learn's 1,797 handwritten digits (UCI, 8x8) and
scikit-image's bundled photographs. Needs `pip install scikit-image` (not a project dependency).
Run from the repository root: python -m tools.check_real_data. Writes into --work_dir and exits
non-zero if any step fails.
"""
import os
import subprocess
import sys

import numpy as np
from absl import app
from absl import flags
from PIL import Image
from sklearn.datasets import load_digits

import arrays
from tools import synthetic

FLAGS = flags.FLAGS
flags.DEFINE_string('work_dir', 'data/real-data-check', 'folder for the data and the runs '
                    '(default data/real-data-check, ignored by git)')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# photographs bundled with scikit-image, and a face-sized box (x, y, w, h) in each
PHOTOS = {'astronaut': (140, 20, 140, 170), 'chelsea': (100, 40, 180, 180),
          'coffee': (150, 50, 300, 300), 'rocket': (180, 20, 120, 350),
          'immunohistochemistry': (100, 100, 250, 250), 'hubble_deep_field': (50, 50, 300, 300)}


def write_digits_npz(path):
    """scikit-learn's real handwritten digits, as --ImageType=digits reads them, in Keras' mnist.npz layout."""
    x = arrays.read_digits()
    y = load_digits().target.astype(np.uint8)
    np.savez(path, x_train=x[:1500], y_train=y[:1500], x_test=x[1500:], y_test=y[1500:])


def write_photo_celeba(root, copies=8):
    """An official-layout CelebA folder of real photographs (each shifted a few times)."""
    import skimage.data
    for folder in ('Img/img_celeba', 'Img/img_align_celeba', 'Img/img_align_celeba_png',
                   'Anno', 'Eval'):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    rows = []
    for name, (x, y, w, h) in PHOTOS.items():
        photo = getattr(skimage.data, name)()
        photo = np.stack([photo] * 3, -1) if photo.ndim == 2 else photo[..., :3]
        for k in range(copies):
            image_id = '{:06d}.jpg'.format(len(rows) + 1)
            shifted = np.roll(photo, 4 * k, axis=1)
            Image.fromarray(shifted).save(os.path.join(root, 'Img/img_celeba', image_id), quality=92)
            aligned = np.asarray(Image.fromarray(shifted[y:y + h, x:x + w]).resize((178, 218)))
            Image.fromarray(aligned).save(os.path.join(root, 'Img/img_align_celeba', image_id),
                                          quality=92)
            Image.fromarray(aligned).save(os.path.join(root, 'Img/img_align_celeba_png',
                                                       image_id[:-4] + '.png'))
            rows.append((image_id, min(x + 4 * k, shifted.shape[1] - w), y, w, h))
    n = len(rows)

    def write(path, header, lines):
        with open(path, 'w') as f:
            if header:
                f.write('{}\n{}\n'.format(n, header))
            f.write(''.join(line + '\n' for line in lines))

    write(os.path.join(root, 'Anno/list_bbox_celeba.txt'), 'image_id x_1 y_1 width height',
          ['{} {} {} {} {}'.format(*r) for r in rows])
    write(os.path.join(root, 'Anno/list_attr_celeba.txt'), ' '.join(synthetic.ATTR_NAMES),
          ['{} {}'.format(r[0], ' '.join(['-1', '1'][i % 2] for i in range(40))) for r in rows])
    for stem in ('list_landmarks_celeba', 'list_landmarks_align_celeba'):
        write(os.path.join(root, 'Anno', stem + '.txt'), ' '.join(synthetic.LANDMARK_NAMES),
              ['{} {}'.format(r[0], ' '.join(['50'] * 10)) for r in rows])
    write(os.path.join(root, 'Anno/identity_CelebA.txt'), None,
          ['{} {}'.format(r[0], i % 7 + 1) for i, r in enumerate(rows)])
    write(os.path.join(root, 'Eval/list_eval_partition.txt'), None,
          ['{} {}'.format(r[0], 0 if i % 4 else (1 if i % 8 else 2)) for i, r in enumerate(rows)])
    return n


def run(script, *args):
    """Run one of this project's entry points and stop the check if it fails."""
    print('$ python {} {}'.format(script, ' '.join(args)), flush=True)
    if subprocess.run([sys.executable, os.path.join(ROOT, script)] + list(args)).returncode:
        print('real-data check FAILED at: python {} {}'.format(script, ' '.join(args)))
        sys.exit(1)


def main(_argv):
    work = os.path.abspath(FLAGS.work_dir)
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    write_digits_npz('digits.npz')
    n = write_photo_celeba('photos')
    print('wrote digits.npz (1,797 real handwritten digits) and photos/ ({} real photographs)'.format(n))
    run('convert_tfrecord.py', '--DatasetPath=photos', '--TFRecordPath=records', '--shard_mb=1')
    run('convert_tfrecord.py', '--verify', '--TFRecordPath=records')
    small = ['--DisInSize=32', '--BATCH_SIZE=16', '--epochs=2', '--steps_per_epoch=4', '--seed=1']
    run('main.py', '--ImageType=MNIST', '--mnist_path=digits.npz', *small)
    run('main.py', '--ImageType=img_celeba', '--bbox', '--TFRecordPath=records', *small)
    run('main.py', '--ImageType=img_align_celeba_png', '--TFRecordPath=records', *small)
    run('plot_logs.py', 'logs/MNIST-False-loss.csv', 'logs/img_celeba-True-loss.csv', '--gif')
    run('generate.py', '--model=models/img_celeba-True/generator.keras', '--out=faces.png')
    print('real-data check passed: outputs in {}'.format(work))


if __name__ == '__main__':
    app.run(main)
